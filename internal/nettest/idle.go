// Package nettest holds the network checks that the tests of several
// packages share.
package nettest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// IdleClosed opens n connections to the HTTP server at addr, makes one
// keep-alive GET request for path on each, then leaves them idle and waits
// up to patience for the server to close every one. It returns what went
// wrong on each connection that was not closed.
func IdleClosed(addr, path string, n int, patience time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = idleClosed(addr, path, patience) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func idleClosed(addr, path string, patience time.Duration) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// Idle now: the next read ends when the server closes the connection
	// (EOF), or when patience runs out.
	_ = conn.SetReadDeadline(time.Now().Add(patience))
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("idle connection %s: %v, want the server to close it (EOF)", conn.LocalAddr(), err)
	}
	return nil
}
