package main

import (
	"context"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"request 1: 15 tools, 1 message(s)",
		"./main.go:3:func main() { println(\"Hello, wrold\") }",
		"+func main() { println(\"Hello, world\") }",
		"tool_result (error: true):\nAccess denied - path outside allowed directories: /etc/shadow not in /project",
		"request 2: 3 message(s)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
