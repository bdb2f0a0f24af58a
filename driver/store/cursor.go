package store

import "encoding/binary"

// cursor reads big-endian fields from untrusted bytes. Every read checks
// the length first; past the end it returns zeros and sets bad, so a
// parser can read a whole structure and check bad once, and a damaged
// file can never cause an out-of-range slice (a panic).
type cursor struct {
	b   []byte
	off int
	bad bool
}

func (c *cursor) take(n int) []byte {
	if c.bad || n < 0 || n > len(c.b)-c.off {
		c.bad = true
		return nil
	}
	s := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return s
}

func (c *cursor) bytes(n int) []byte { return c.take(n) }

func (c *cursor) u8() byte {
	if s := c.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (c *cursor) u16() uint16 {
	if s := c.take(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (c *cursor) u32() uint32 {
	if s := c.take(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (c *cursor) u64() uint64 {
	if s := c.take(8); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

// rest returns what is left; after an error, nothing.
func (c *cursor) rest() []byte {
	if c.bad {
		return nil
	}
	s := c.b[c.off:]
	c.off = len(c.b)
	return s
}
