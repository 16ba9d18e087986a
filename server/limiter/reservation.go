package limiter

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/sluice-rl/sluice/server/config"
)

// reservationIDLen is the length of a reservation id: 16 random bytes in
// lower-case hex.
const reservationIDLen = 32

// newReservationID returns a fresh random reservation id.
func newReservationID() string {
	var b [reservationIDLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// validReservationID reports whether id has the shape newReservationID makes.
func validReservationID(id string) bool {
	if len(id) != reservationIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// recordKey names the Redis hash of a reservation record.
func (l *Limiter) recordKey(id string) string { return l.prefix + "res:" + id }

// tokenCode is the kind code scripts use for a token kind: 1 total, 2 prompt,
// 3 completion.
func tokenCode(k config.Kind) uint8 { return uint8(k - config.KindTotalTokens + 1) }

// kindOfCode is the inverse of tokenCode.
func kindOfCode(code uint8) config.Kind { return config.KindTotalTokens + config.Kind(code) - 1 }
