package sandbox

import (
	"encoding/binary"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The sandbox's seccomp filter refuses (EPERM) the three system calls of
// the kernel keyring: add_key, request_key and keyctl. Keyrings are not
// namespaced and belong to a user id, so a command that bwrap runs as the
// host's root, even with every capability dropped, could otherwise read,
// replace or clear the keys of the host's root (its user keyring grants
// its owner everything). Nothing a workspace runs needs them. Everything
// else is allowed: the filter is a patch for this one uid-based hole, not
// a syscall policy.
//
// On amd64 the x32 ABI is refused outright and i386 programs get the same
// filter with their own numbers; on arm64, 32-bit arm programs likewise.
// A system call of any other architecture is refused.

// Classic BPF, as seccomp reads it (linux/filter.h, linux/seccomp.h).
const (
	bpfLdAbsW = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	bpfRetK   = 0x06 // BPF_RET | BPF_K

	seccompRetAllow = 0x7fff0000
	seccompRetErrno = 0x00050000

	offNr   = 0 // struct seccomp_data: int nr
	offArch = 4 // __u32 arch

	x32SyscallBit = 0x40000000
)

// keyringABI is one architecture's numbers for add_key, request_key and
// keyctl.
type keyringABI struct {
	arch uint32
	nrs  [3]uint32
	x32  bool // refuse system calls with the x32 bit set
}

// keyringABIs returns the native ABI of this build first, then the compat
// ABI the kernel also runs, if any; nil when the architecture is not known
// here.
func keyringABIs() []keyringABI {
	native := [3]uint32{unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY, unix.SYS_KEYCTL}
	switch runtime.GOARCH {
	case "amd64":
		return []keyringABI{{arch: unix.AUDIT_ARCH_X86_64, nrs: native, x32: true},
			{arch: unix.AUDIT_ARCH_I386, nrs: [3]uint32{286, 287, 288}}}
	case "arm64":
		return []keyringABI{{arch: unix.AUDIT_ARCH_AARCH64, nrs: native},
			{arch: unix.AUDIT_ARCH_ARM, nrs: [3]uint32{309, 310, 311}}}
	case "riscv64":
		return []keyringABI{{arch: unix.AUDIT_ARCH_RISCV64, nrs: native}}
	case "386":
		return []keyringABI{{arch: unix.AUDIT_ARCH_I386, nrs: native}}
	case "arm":
		return []keyringABI{{arch: unix.AUDIT_ARCH_ARM, nrs: native}}
	case "ppc64le":
		return []keyringABI{{arch: unix.AUDIT_ARCH_PPC64LE, nrs: native}}
	case "s390x":
		return []keyringABI{{arch: unix.AUDIT_ARCH_S390X, nrs: native}}
	case "loong64":
		return []keyringABI{{arch: unix.AUDIT_ARCH_LOONGARCH64, nrs: native}}
	}
	return nil
}

// bpfInsn is a struct sock_filter.
type bpfInsn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

var seccompFilter = sync.OnceValue(func() []byte {
	abis := keyringABIs()
	if len(abis) == 0 {
		return nil
	}
	// One block per ABI: check the arch (else on to the next block; after
	// the last, deny), load the number, deny the refused ones, allow the
	// rest. The deny return ends the program.
	var prog []bpfInsn
	type jump struct {
		at     int
		block  int // the block to jump to; len(abis) is the deny return
		onTrue bool
	}
	var jumps []jump
	starts := make([]int, len(abis)+1)
	for i, abi := range abis {
		starts[i] = len(prog)
		prog = append(prog, bpfInsn{code: bpfLdAbsW, k: offArch})
		jumps = append(jumps, jump{at: len(prog), block: i + 1})
		prog = append(prog, bpfInsn{code: bpfJeqK, k: abi.arch}, bpfInsn{code: bpfLdAbsW, k: offNr})
		if abi.x32 {
			jumps = append(jumps, jump{at: len(prog), block: len(abis), onTrue: true})
			prog = append(prog, bpfInsn{code: bpfJgeK, k: x32SyscallBit})
		}
		for _, nr := range abi.nrs {
			jumps = append(jumps, jump{at: len(prog), block: len(abis), onTrue: true})
			prog = append(prog, bpfInsn{code: bpfJeqK, k: nr})
		}
		prog = append(prog, bpfInsn{code: bpfRetK, k: seccompRetAllow})
	}
	starts[len(abis)] = len(prog)
	prog = append(prog, bpfInsn{code: bpfRetK, k: seccompRetErrno | uint32(syscall.EPERM)})
	for _, j := range jumps {
		off := starts[j.block] - j.at - 1 // BPF jumps are relative to the next instruction
		if j.onTrue {
			prog[j.at].jt = uint8(off)
		} else {
			prog[j.at].jf = uint8(off)
		}
	}
	buf := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		buf = binary.NativeEndian.AppendUint16(buf, in.code)
		buf = append(buf, in.jt, in.jf)
		buf = binary.NativeEndian.AppendUint32(buf, in.k)
	}
	return buf
})

// seccompProgram returns a pipe holding the filter, for bwrap's --seccomp
// (which reads it to the end): a fresh one per sandbox, closed by Start
// (or Release) once the child has its copy. nil, when no pipe can be made,
// makes bwrap fail: the sandbox never runs without its filter.
func seccompProgram() *os.File {
	prog := seccompFilter()
	if prog == nil {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	defer w.Close()
	if _, err := w.Write(prog); err != nil { // a few hundred bytes: the pipe holds them
		r.Close()
		return nil
	}
	return r
}
