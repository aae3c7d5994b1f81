package bpf

// Regenerate the probes (needs clang, llvm and libbpf-dev):
//
//	make vmlinux       # refresh the pinned headers/vmlinux.h, on purpose only
//	go generate ./bpf/...
//
// kprobe.c is one compilation unit that includes the headers under probes/,
// one per concern (event layout, shared maps, the filter, and each hook
// family). The generated bpf_x86_bpfel.go and bpf_x86_bpfel.o are committed
// so that `go build` needs no clang.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type event -type event_type bpf kprobe.c

// flight.c is the flight recorder, a separate object loaded only with --flight-recorder
// (flight.go), so that it adds nothing to the plain recorder's hooks.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type flight_call -type flight_chunk flight flight.c
