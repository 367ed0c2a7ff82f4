package synod

// Queued returns how many calls of key wait behind its running round in c,
// for tests that must know a batch has formed before they let it run.
func Queued(c *Client, key string) int {
	c.keys.mu.Lock()
	defer c.keys.mu.Unlock()
	if q := c.keys.m[key]; q != nil {
		return len(q.waiting)
	}
	return 0
}
