// Package keyslot computes the Redis Cluster hash slot of a key, as Redis
// does (CLUSTER KEYSLOT), so that callers can group keys by slot before they
// send them.
package keyslot

import "strings"

// Count is the number of Redis Cluster hash slots.
const Count = 16384

// crc16Table is CRC16/XMODEM (polynomial 0x1021, initial value 0), the
// checksum Redis Cluster hashes keys with.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 is the CRC16/XMODEM checksum of s.
func CRC16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crc16Table[byte(c>>8)^s[i]]
	}
	return c
}

// Of is the slot of key: CRC16 of its hash tag (what lies between the first
// '{' and the first '}' after it, when that is not empty) or of the whole
// key, mod 16384.
func Of(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(CRC16(key) % Count)
}
