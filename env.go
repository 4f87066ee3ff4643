package agentbackend

import (
	"maps"
	"strings"
)

// blockedEnvNames are variables that change how every program loads or how
// the shell starts, so a per-command value could hijack the command. The
// reference drops them with a log line; here they are refused, because a
// silent drop hides a bug in the caller.
var blockedEnvNames = map[string]bool{
	"LD_PRELOAD": true, "LD_LIBRARY_PATH": true,
	"DYLD_INSERT_LIBRARIES": true, "DYLD_LIBRARY_PATH": true,
	"IFS": true, "BASH_ENV": true, "ENV": true,
}

// ValidateEnv checks variables a caller wants to pass to a command: names
// must be shell identifiers ([A-Za-z_][A-Za-z0-9_]*) and not one of the
// loader or shell-startup variables (LD_PRELOAD, LD_LIBRARY_PATH,
// DYLD_INSERT_LIBRARIES, DYLD_LIBRARY_PATH, IFS, BASH_ENV, ENV); values must
// not contain NUL. Failures are INVALID_CONFIGURATION naming the variable.
// Every backend checks ExecOptions.Env and ScopeConfig.Env with it before
// anything runs.
func ValidateEnv(env map[string]string) error {
	for name, value := range env {
		switch {
		case !isEnvName(name):
			return errConfig("Environment variable name %q is not a valid identifier", name)
		case blockedEnvNames[name]:
			return errConfig("Environment variable %s is not allowed: it changes how programs load or how the shell starts", name)
		case strings.IndexByte(value, 0) >= 0:
			return errConfig("Environment variable %s contains dangerous characters (NUL)", name)
		}
	}
	return nil
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// mergeEnv returns base with over laid on top. It returns one of its
// arguments unchanged when the other is empty, so the common case does not
// allocate; callers must not modify the result.
func mergeEnv(base, over map[string]string) map[string]string {
	switch {
	case len(over) == 0:
		return base
	case len(base) == 0:
		return over
	}
	m := make(map[string]string, len(base)+len(over))
	maps.Copy(m, base)
	maps.Copy(m, over)
	return m
}
