package agentbackend

// jailer is the optional capability of a backend to enforce a scope where
// its files are (see ScopedBackend): jail returns a view of the directory
// dir (clean, relative to the backend's root, not ".") whose root is that
// directory, and which resolves every path beneath it, following symbolic
// links inside it only. The directory need not exist yet. The view is a
// FileBackend with the backend's optional interfaces (InfoLister, Globber,
// Grepper, LinkResolver, ProcessStarter) working on that directory; it
// shares the backend's status and lifetime, and its Close releases only
// what the view itself holds. A view that is itself a jailer jails a child
// scope beneath it, so every level of nested scopes is resolved beneath
// its parent. jail returns nil when it cannot jail dir: the scope then
// falls back to the path rule alone (prefix arithmetic).
//
// It is unexported: the backends of this package implement it, and other
// FileBackend implementations get prefix arithmetic (documented on
// ScopedBackend).
type jailer interface {
	jail(dir string) FileBackend
}
