// Replays inputs through LLVMFuzzerTestOneInput without libFuzzer, so fuzz targets built with
// any compiler still run their seed corpus (and any crash reproducer) under ctest.
// Usage: fuzz_target FILE_OR_DIR...  (flags starting with '-' are ignored, as libFuzzer's would be)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool replayFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  size_t replayed = 0;
  bool all_readable = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.starts_with("-")) continue;
    std::error_code error;
    if (std::filesystem::is_directory(arg, error)) {
      // Sorted, so a failure reproduces in the same order.
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg, error)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      if (error) {
        std::fprintf(stderr, "cannot list %s: %s\n", arg.c_str(), error.message().c_str());
        all_readable = false;
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) {
        all_readable &= replayFile(file);
        ++replayed;
      }
    } else {
      all_readable &= replayFile(arg);
      ++replayed;
    }
  }
  std::printf("replayed %zu inputs\n", replayed);
  return all_readable ? 0 : 1;
}
