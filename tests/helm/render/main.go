// helm-render: renders a Helm chart the way `helm template` does, for tests on machines without
// helm: Go text/template with sprig (Debian's golang-github-masterminds-sprig-dev) plus Helm's
// own functions (include, tpl, required, toYaml, fromYaml, lookup -> empty as in `helm
// template`), .Values = values.yaml merged with -f files and --set a.b=c, .Release, .Chart.
//
//	helm-render [-f values.yaml]... [--set key=value]... [--namespace ns] [--name release]
//	            [--notes] CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func readYaml(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

// merge copies src over dst, maps recursively (Helm's coalescing of values files).
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// setValue applies one --set a.b.c=value (ints, bools and null typed as Helm does).
func setValue(values map[string]interface{}, assignment string) error {
	eq := strings.Index(assignment, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: expected key=value", assignment)
	}
	keys := strings.Split(assignment[:eq], ".")
	raw := assignment[eq+1:]
	var value interface{} = raw
	if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
		value = i
	} else if raw == "true" || raw == "false" {
		value = raw == "true"
	} else if raw == "null" {
		value = nil
	} else if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
		list := strings.Split(strings.Trim(raw, "{}"), ",")
		items := []interface{}{}
		for _, item := range list {
			if item != "" {
				items = append(items, item)
			}
		}
		value = items
	}
	node := values
	for _, k := range keys[:len(keys)-1] {
		next, ok := node[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			node[k] = next
		}
		node = next
	}
	node[keys[len(keys)-1]] = value
	return nil
}

func toYaml(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func main() {
	var valueFiles, sets multi
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "key=value (repeatable)")
	namespace := flag.String("namespace", "default", "release namespace")
	name := flag.String("name", "rdmesh", "release name")
	notes := flag.Bool("notes", false, "print NOTES.txt instead of the manifests")
	printValues := flag.Bool("print-values", false, "print the merged values as JSON and exit")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [-f values]... [--set k=v]... CHART_DIR")
		os.Exit(2)
	}
	chartDir := flag.Arg(0)
	if err := run(chartDir, valueFiles, sets, *namespace, *name, *notes, *printValues); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func run(chartDir string, valueFiles, sets []string, namespace, name string, notes, printValues bool) error {
	chart, err := readYaml(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYaml(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range valueFiles {
		extra, err := readYaml(f)
		if err != nil {
			return err
		}
		merge(values, extra)
	}
	for _, s := range sets {
		if err := setValue(values, s); err != nil {
			return err
		}
	}
	if printValues {
		out, err := json.Marshal(values)
		if err != nil {
			return err
		}
		fmt.Println(string(out))
		return nil
	}
	chartName := fmt.Sprint(chart["name"])
	root := template.New(chartName)
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		_ = yaml.Unmarshal([]byte(s), &out)
		return out
	}
	funcs["required"] = func(message string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", message)
		}
		return v, nil
	}
	funcs["lookup"] = func(string, string, string, string) map[string]interface{} {
		return map[string]interface{}{} // as `helm template`: no cluster to read
	}
	funcs["include"] = func(string, interface{}) (string, error) { return "", nil }
	funcs["tpl"] = func(string, interface{}) (string, error) { return "", nil }
	root.Funcs(funcs)
	// include and tpl need the template set itself.
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, n, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs).Option("missingkey=zero")

	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if _, err := root.New(chartName + "/templates/" + filepath.Base(f)).Parse(string(data)); err != nil {
			return err
		}
	}
	dot := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
		},
	}
	for _, f := range files {
		base := filepath.Base(f)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != notes {
			continue
		}
		dot["Template"] = map[string]interface{}{"Name": chartName + "/templates/" + base, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, chartName+"/templates/"+base, dot); err != nil {
			return err
		}
		if notes {
			fmt.Print(buf.String())
			continue
		}
		if strings.TrimSpace(buf.String()) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s/templates/%s\n%s\n", chartName, base, strings.TrimSpace(buf.String()))
	}
	return nil
}
