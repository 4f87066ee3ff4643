// Package sshext names this module's extensions to the SSH protocol the
// daemon speaks: channel requests and subsystems that RemoteBackend sends
// and the daemon serves. Both ends are this module, so they are nobody's
// API. The reference daemon knows none of them and refuses each; the
// client then falls back to plain SSH and SFTP, as each name's comment says.
package sshext

// ScopeRequest is the channel request a RemoteBackend sends on each session
// of a scope (SFTP, exec, search) before it starts the session's program:
// the daemon then jails the session at the scope, resolving every path
// beneath the scope's directory and running commands with only that
// directory as their workspace. Its payload is one SSH string: the scope's
// levels (each a clean relative path, as given to Scope), separated by NUL
// bytes, each resolved beneath the one before it. Refused (the reference
// daemon), the session serves the whole workspace and the scope falls back
// to the path rule (prefix arithmetic), which the backend logs once.
const ScopeRequest = "scope@agentbackend"

// BackgroundRequest is the channel request a RemoteBackend sends on the
// session of a background process before its exec request: the daemon
// exempts the command from MaxExecsPerConn (a background process is
// bounded by MaxSessionsPerConn instead), so that long-running processes
// do not hold up each other or Exec. Refused, it is harmless.
const BackgroundRequest = "background@agentbackend"

// SearchSubsystem runs Glob and Grep next to the data: one JSON request,
// one JSON answer (package searchwire). Without it, RemoteBackend searches
// through SFTP.
const SearchSubsystem = "agentbe-search@agentbackend"

// WatchSubsystem streams the changes to a directory tree (inotify beneath
// the session's jail) to RemoteBackend.Watch (package searchwire). Without
// it, RemoteBackend scans through SFTP.
const WatchSubsystem = "agentbe-watch@agentbackend"
