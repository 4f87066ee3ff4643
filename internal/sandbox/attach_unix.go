//go:build unix

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// run reads what bubblewrap (process bwrap) reports about its sandbox,
// opens the sandbox's network namespace and calls the Attacher with it.
// The command still waits: see unblock.
func (a *attachment) run(bwrap int) (io.Closer, error) {
	var info struct {
		Pid int    `json:"child-pid"`
		Net uint64 `json:"net-namespace"`
	}
	err := json.NewDecoder(a.info).Decode(&info)
	a.info.Close()
	if err != nil || info.Pid <= 0 {
		return nil, fmt.Errorf("bubblewrap did not report its sandbox (%v)", err)
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(info.Pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open the sandbox's network namespace: %w", err)
	}
	defer ns.Close()
	// The namespace opened is the sandbox's: the one bubblewrap reported,
	// or (a bubblewrap that reports none) that of its child, which cannot
	// be reaped while it waits for unblock.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(ns.Fd()), &st); err != nil {
		return nil, err
	}
	if info.Net != 0 && uint64(st.Ino) != info.Net || info.Net == 0 && childOf(bwrap) != info.Pid {
		return nil, errors.New("the sandbox's network namespace changed before it could be attached")
	}
	return a.attach(ns)
}

// unblock lets the command run.
func (a *attachment) unblock() {
	_, _ = a.block.Write([]byte{1})
	a.block.Close()
}
