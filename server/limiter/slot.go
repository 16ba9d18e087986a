package limiter

import (
	"strconv"
	"strings"
	"sync"
)

// numSlots is the number of Redis Cluster hash slots.
const numSlots = 16384

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

func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crc16Table[byte(c>>8)^s[i]]
	}
	return c
}

// hashSlot is the Redis Cluster slot of key: CRC16 of its hash tag (what lies
// between the first '{' and the first '}' after it, when that is not empty)
// or of the whole key, mod 16384 — as Redis computes it (CLUSTER KEYSLOT).
func hashSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % numSlots)
}

// slotTags[s] is a short hash tag whose slot is s: "r" followed by a decimal
// number, the smallest such number. A reservation record for slot s lives
// under a key carrying this tag, so that the record is in the slot of the
// counters it lists and its key follows from the slot alone.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var t [numSlots]string
	left := numSlots
	for n := 0; left > 0; n++ {
		tag := "r" + strconv.Itoa(n)
		if s := crc16(tag) % numSlots; t[s] == "" {
			t[s] = tag
			left--
		}
	}
	return &t
})
