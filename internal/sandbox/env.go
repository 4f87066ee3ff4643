package sandbox

import (
	"os"
	"strings"
)

// DefaultPath is the PATH commands get when this process has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BaseEnv returns the environment a command starts from, before the
// configured variables: this process's whole environment when inherit is
// true; otherwise only PATH (DefaultPath when this process has none), LANG,
// LANGUAGE and LC_*, TERM and TMPDIR, so that what the caller holds (API
// keys, tokens) stays out of the workspace. Under bubblewrap TMPDIR is
// /tmp, the sandbox's own. Command adds HOME and PWD.
func BaseEnv(inherit, sandboxed bool) []string {
	if inherit {
		env := os.Environ()
		if sandboxed {
			env = append(env, "TMPDIR=/tmp") // host TMPDIRs do not exist in the sandbox
		}
		return env
	}
	env := make([]string, 0, 8)
	havePath := false
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH":
			if value != "" {
				env = append(env, kv)
				havePath = true
			}
		case name == "TMPDIR":
			if !sandboxed {
				env = append(env, kv)
			}
		case name == "LANG" || name == "LANGUAGE" || name == "TERM" || strings.HasPrefix(name, "LC_"):
			env = append(env, kv)
		}
	}
	if !havePath {
		env = append(env, "PATH="+DefaultPath)
	}
	if sandboxed {
		env = append(env, "TMPDIR=/tmp")
	}
	return env
}
