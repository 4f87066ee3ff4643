package kubernetes

// ForceSPDY makes b's execs use SPDY, the fallback for API servers without
// WebSocket streaming, so that the tests cover it on a server that has both.
func ForceSPDY(b *Backend) { b.t.spdyOnly.Store(true) }
