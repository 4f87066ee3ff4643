package sandbox

import (
	"bytes"
	"os"
	"strconv"
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
