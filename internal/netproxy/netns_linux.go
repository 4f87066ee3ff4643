package netproxy

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenIn listens on addr (TCP, "127.0.0.1:3128") inside the network
// namespace netns (an open /proc/PID/ns/net), so that a sandbox whose only
// interface is its own loopback can reach a Server: the connections it
// accepts are served by this process, which dials out from its own
// namespace.
//
// It needs CAP_SYS_ADMIN in this process's user namespace and in the one
// that owns netns (root has both): the socket is made by a thread moved
// into netns, which is never moved back (Go ends a locked thread with its
// goroutine), so no other goroutine ever runs in the sandbox's namespace.
func ListenIn(netns *os.File, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter the sandbox's network namespace: %w", err)}
			return
		}
		l, err := net.Listen("tcp", addr)
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
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
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ch <- unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	}()
	if err := <-ch; err != nil {
		return fmt.Errorf("entering a network namespace needs CAP_SYS_ADMIN (run as root): %w", err)
	}
	return nil
}
