package netproxy

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ListenIn listens on TCP port (0: any free one) inside the network
// namespace netns (an open /proc/PID/ns/net) of a sandbox whose only
// interface is its own loopback, so that the sandbox can reach a Server:
// the connections it accepts are served by this process, which dials out
// from its own namespace.
//
// It listens on every address of that namespace, which are its loopback's
// only: bubblewrap may still be bringing the loopback up, and a socket
// bound to 127.0.0.1 before then would fail.
//
// It needs CAP_SYS_ADMIN in this process's user namespace and in the one
// that owns netns (root has both). The socket is made by a locked thread
// moved into netns and back (see inNetns).
func ListenIn(netns *os.File, port int) (net.Listener, error) {
	var l net.Listener
	err := inNetns(netns, func() error {
		var err error
		l, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		return err
	})
	if err != nil && l != nil {
		l.Close()
		l = nil
	}
	return l, err
}

// CanListenIn reports why ListenIn cannot work in this process (nil when
// it can): entering a network namespace needs CAP_SYS_ADMIN. It enters
// this process's own namespace, which needs the same capability.
func CanListenIn() error {
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := inNetns(f, func() error { return nil }); err != nil {
		return fmt.Errorf("entering a network namespace needs CAP_SYS_ADMIN (run as root): %w", err)
	}
	return nil
}

// inNetns runs fn on a thread of its own moved into the network namespace
// netns, then moves the thread back and releases it. While fn runs no
// other goroutine can be scheduled on that thread.
//
// The thread must go back rather than end: a process started by this one
// that asked to die with its parent (bubblewrap's --die-with-parent, which
// is PR_SET_PDEATHSIG) is killed when the thread that started it ends, and
// Go ends a thread whose goroutine exits while locked to it. So it ends
// only when moving back fails, which would leave it in the sandbox's
// namespace.
func inNetns(netns *os.File, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer home.Close()
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("enter the sandbox's network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("return from the sandbox's network namespace: %w", err) // the thread ends, locked
			return
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	return <-ch
}
