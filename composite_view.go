package agentbackend

import "slices"

var _ jailer = (*CompositeBackend)(nil)

// jail returns the view of a scope of the composite at dir (see jailer):
// the jailed view of dir in the backend it routes to (that backend itself
// when dir is its mount point) or, when routes are mounted below dir, a
// composite of that view and those routes. A backend that cannot jail
// (MemoryBackend, which has no links, or another FileBackend) leaves the
// scope to the path rule.
func (c *CompositeBackend) jail(dir string) (FileBackend, func()) {
	t := c.route(dir)
	top, release := t.b, func() {}
	if t.inner != "." {
		j, ok := t.b.(jailer)
		if !ok {
			return nil, nil
		}
		if top, release = j.jail(t.inner); top == nil {
			return nil, nil
		}
	}
	below := c.routesBelow(dir)
	if len(below) == 0 {
		return top, release
	}
	v := &CompositeBackend{def: top, view: true}
	v.init(TypeComposite, StatusConnected)
	for _, r := range below {
		rel, _ := belowDir(dir, r.prefix)
		v.routes = append(v.routes, route{rel, r.b})
	}
	slices.SortFunc(v.routes, func(a, b route) int { return len(b.prefix) - len(a.prefix) })
	return v, release
}
