//go:build !unix

package daemon

import "syscall"

// signals is empty where commands do not run: no signal is delivered.
var signals = map[string]syscall.Signal{}
