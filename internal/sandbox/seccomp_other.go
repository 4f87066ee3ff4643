//go:build !linux

package sandbox

import "os"

// bubblewrap is Linux-only: there is no filter to give it elsewhere.
func seccompFilter() []byte { return nil }

func seccompProgram() *os.File { return nil }
