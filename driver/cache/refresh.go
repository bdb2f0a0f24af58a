package cache

// Refresh drops the fresh copies of name (every name when empty), so the
// next request for it asks the backend (swarmkeep refresh: a value changed
// outside swarmkeep, say in Vault). A value copy is kept as last-known-good,
// served only if that request finds the backend unavailable, as its age
// says; a remembered not-found is forgotten. It returns how many entries it
// dropped or demoted.
func (c *Cache) Refresh(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.entries.m {
		if name != "" && e.name != name {
			continue
		}
		switch {
		case e.kind == positive && !e.wiped:
			if !e.fromLKG {
				e.fromLKG = true
				n++
			}
		default:
			c.entries.remove(e)
			n++
		}
	}
	return n
}
