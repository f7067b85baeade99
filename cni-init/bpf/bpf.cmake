# Builds capture.bpf.c into ${RDMESH_BPF_GEN_DIR}/capture.skel.h (target rdmesh_capture_skeleton).
# vmlinux.h comes from the build machine's BTF (/sys/kernel/btf/vmlinux); the object is CO-RE, so
# it relocates on other kernels with BTF.
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
set(RDMESH_VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "Kernel BTF for vmlinux.h")
set(RDMESH_BPF_GEN_DIR ${CMAKE_CURRENT_BINARY_DIR}/bpf-gen)
file(MAKE_DIRECTORY ${RDMESH_BPF_GEN_DIR})

add_custom_command(
  OUTPUT ${RDMESH_BPF_GEN_DIR}/vmlinux.h
  COMMAND ${BPFTOOL} btf dump file ${RDMESH_VMLINUX_BTF} format c > ${RDMESH_BPF_GEN_DIR}/vmlinux.h
  COMMENT "bpftool: vmlinux.h from ${RDMESH_VMLINUX_BTF}"
  VERBATIM)

set(_bpf_src ${CMAKE_CURRENT_SOURCE_DIR}/bpf/capture.bpf.c)
add_custom_command(
  OUTPUT ${RDMESH_BPF_GEN_DIR}/capture.bpf.o
  COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
          -I${RDMESH_BPF_GEN_DIR} -I${CMAKE_CURRENT_SOURCE_DIR}/bpf
          -c ${_bpf_src} -o ${RDMESH_BPF_GEN_DIR}/capture.bpf.o
  DEPENDS ${_bpf_src} ${CMAKE_CURRENT_SOURCE_DIR}/bpf/capture_abi.h ${RDMESH_BPF_GEN_DIR}/vmlinux.h
  COMMENT "clang -target bpf: capture.bpf.o"
  VERBATIM)

add_custom_command(
  OUTPUT ${RDMESH_BPF_GEN_DIR}/capture.skel.h
  COMMAND sh -c "${BPFTOOL} gen skeleton ${RDMESH_BPF_GEN_DIR}/capture.bpf.o name rdmesh_capture_bpf > ${RDMESH_BPF_GEN_DIR}/capture.skel.h.tmp && mv ${RDMESH_BPF_GEN_DIR}/capture.skel.h.tmp ${RDMESH_BPF_GEN_DIR}/capture.skel.h"
  DEPENDS ${RDMESH_BPF_GEN_DIR}/capture.bpf.o
  COMMENT "bpftool gen skeleton: capture.skel.h"
  VERBATIM)

add_custom_target(rdmesh_capture_skeleton DEPENDS ${RDMESH_BPF_GEN_DIR}/capture.skel.h)
