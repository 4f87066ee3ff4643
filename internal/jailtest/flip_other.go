//go:build !linux

package jailtest

import "testing"

// Flip needs renameat2, which only Linux has: the test is skipped.
func Flip(t testing.TB, a, b string) (stop func()) {
	t.Skip("exchanging two paths atomically needs Linux (renameat2)")
	return func() {}
}
