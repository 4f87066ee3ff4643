package sandbox

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// childOf returns the process id of a child of pid, or 0 when it has none
// (or /proc cannot tell). bwrap has exactly one child: the init of the
// sandbox's pid namespace.
func childOf(pid int) int {
	id := strconv.Itoa(pid)
	if data, err := os.ReadFile("/proc/" + id + "/task/" + id + "/children"); err == nil {
		if f := bytes.Fields(data); len(f) > 0 {
			child, _ := strconv.Atoi(string(f[0]))
			return child
		}
		return 0
	}
	// Kernels without CONFIG_PROC_CHILDREN: find it by its parent.
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may contain spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		if f := bytes.Fields(stat[i+1:]); len(f) > 1 && string(f[1]) == id {
			return child
		}
	}
	return 0
}

// awaitNamespace waits (up to a second) until the init of a sandbox whose
// bubblewrap was killed has exited. The kernel lets a pid namespace's init
// finish exiting only once every other process in it is gone, so from then
// on nothing the command started runs; before, for a moment after
// bubblewrap itself is reaped, one could still write a file.
func awaitNamespace(init int) {
	stat := "/proc/" + strconv.Itoa(init) + "/stat"
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		data, err := os.ReadFile(stat)
		if err != nil {
			return // reaped
		}
		if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) && data[i+2] == 'Z' {
			return // exited, not yet reaped by whoever adopted it
		}
	}
}
