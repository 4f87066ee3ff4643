//go:build !linux

package netproxy

import (
	"errors"
	"net"
	"os"
)

var errNoNetns = errors.New("network namespaces are Linux only")

// ListenIn is Linux only.
func ListenIn(netns *os.File, port int) (net.Listener, error) { return nil, errNoNetns }

// CanListenIn is Linux only.
func CanListenIn() error { return errNoNetns }
