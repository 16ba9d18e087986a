package limiter

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/sluice-rl/sluice/server/config"
)

// Reservation ids
//
// On a single node (and Sentinel) a reservation id is 32 lower-case hex
// characters, 16 random bytes, and its record is the hash
//
//	<prefix>res:<id>
//
// On Redis Cluster a call's counters may lie in several hash slots, and a
// script may only touch keys of one slot, so the reservation keeps one record
// per slot it reserved in, written by that slot's script in the same atomic
// step as its counters. The id is then the 32 hex characters followed by the
// slots in ascending decimal, each after a dot:
//
//	0f3c9a…e1.1043.12999
//
// and the record of slot s is
//
//	<prefix>{<tag of s>}:res:<32 hex>
//
// where the tag of s is the shortest "r<n>" whose hash slot is s (see
// slotTags): every record key follows from the id, and each record shares
// its slot with the counters it lists. A cluster id is at most
// 32 + 6*MaxDescriptors characters.

// reservationIDLen is the length of the random part of a reservation id: 16
// random bytes in lower-case hex.
const reservationIDLen = 32

// maxReservationIDLen bounds a reservation id: the random part and at most
// one slot per descriptor.
const maxReservationIDLen = reservationIDLen + MaxDescriptors*len(".16383")

// newReservationID returns a fresh random reservation id, for records in
// slots (ascending) on a cluster, or for one plain record when slots is nil.
func newReservationID(slots []int) string {
	var b [reservationIDLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	if len(slots) == 0 {
		return hex.EncodeToString(b[:])
	}
	id := make([]byte, 0, reservationIDLen+6*len(slots))
	id = hex.AppendEncode(id, b[:])
	for _, s := range slots {
		id = append(id, '.')
		id = strconv.AppendInt(id, int64(s), 10)
	}
	return string(id)
}

// validReservationID reports whether id has a shape newReservationID makes.
func validReservationID(id string) bool {
	_, ok := parseReservationID(id)
	return ok
}

// parseReservationID checks id and returns its slots (nil for a plain id).
func parseReservationID(id string) (slots []int, ok bool) {
	if len(id) < reservationIDLen || len(id) > maxReservationIDLen {
		return nil, false
	}
	for i := 0; i < reservationIDLen; i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, false
		}
	}
	rest := id[reservationIDLen:]
	for rest != "" {
		if rest[0] != '.' {
			return nil, false
		}
		rest = rest[1:]
		n := strings.IndexByte(rest, '.')
		if n < 0 {
			n = len(rest)
		}
		num := rest[:n]
		rest = rest[n:]
		if num == "" || len(num) > 5 || (num[0] == '0' && len(num) > 1) {
			return nil, false
		}
		s, err := strconv.Atoi(num)
		if err != nil || s < 0 || s >= numSlots || (len(slots) > 0 && s <= slots[len(slots)-1]) || len(slots) == MaxDescriptors {
			return nil, false // not a slot, not ascending, or more slots than descriptors
		}
		slots = append(slots, s)
	}
	return slots, true
}

// recordKey names the Redis hash of a plain reservation's record.
func (l *Limiter) recordKey(id string) string { return l.prefix + "res:" + id }

// slotRecordKey names the record, in slot, of the reservation whose random
// part is random.
func (l *Limiter) slotRecordKey(random string, slot int) string {
	return l.prefix + "{" + slotTags()[slot] + "}:res:" + random
}

// recordKeys lists the record keys of a valid reservation id.
func (l *Limiter) recordKeys(id string) []string {
	slots, _ := parseReservationID(id)
	if len(slots) == 0 {
		return []string{l.recordKey(id)}
	}
	keys := make([]string, len(slots))
	for i, s := range slots {
		keys[i] = l.slotRecordKey(id[:reservationIDLen], s)
	}
	return keys
}

// tokenCode is the kind code scripts use for a token kind: 1 total, 2 prompt,
// 3 completion.
func tokenCode(k config.Kind) uint8 { return uint8(k - config.KindTotalTokens + 1) }

// kindOfCode is the inverse of tokenCode.
func kindOfCode(code uint8) config.Kind { return config.KindTotalTokens + config.Kind(code) - 1 }
