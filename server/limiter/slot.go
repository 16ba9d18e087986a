package limiter

import (
	"strconv"
	"sync"

	"github.com/sluice-rl/sluice/internal/keyslot"
)

// numSlots is the number of Redis Cluster hash slots.
const numSlots = keyslot.Count

// hashSlot is the Redis Cluster slot of key.
func hashSlot(key string) int { return keyslot.Of(key) }

// slotTags[s] is a short hash tag whose slot is s: "r" followed by a decimal
// number, the smallest such number. A reservation record for slot s lives
// under a key carrying this tag, so that the record is in the slot of the
// counters it lists and its key follows from the slot alone.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var t [numSlots]string
	left := numSlots
	for n := 0; left > 0; n++ {
		tag := "r" + strconv.Itoa(n)
		if s := keyslot.Of(tag); t[s] == "" {
			t[s] = tag
			left--
		}
	}
	return &t
})
