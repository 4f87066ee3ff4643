package kubernetes

// ForceSPDY makes b's execs use SPDY, the fallback for API servers without
// WebSocket streaming, so that the tests cover it on a server that has both.
func ForceSPDY(b *Backend) { b.t.spdyOnly.Store(true) }

// UsesSPDY reports whether b's execs have gone over to SPDY.
func UsesSPDY(b *Backend) bool { return b.t.spdyOnly.Load() }
