package main

import (
	"crypto/sha256"
	"net/http"
	"strings"
)

// keyring maps API keys to what they open and who holds them.
type keyring struct {
	keys map[[sha256.Size]byte]*Key
}

func newKeyring(keys []Key) *keyring {
	k := &keyring{keys: make(map[[sha256.Size]byte]*Key, len(keys))}
	for i := range keys {
		k.keys[sha256.Sum256([]byte(keys[i].Key))] = &keys[i]
	}
	return k
}

// presented is the key a call carries: Authorization: Bearer <key>, else an
// apikey header; empty when there is none.
func presented(r *http.Request) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
	}
	return strings.TrimSpace(r.Header.Get("apikey"))
}

// lookup is the config of key, or nil when it is not known. Keys are looked
// up by their SHA-256, so the lookup time does not depend on how much of a
// wrong key matches a right one.
func (k *keyring) lookup(key string) *Key { return k.keys[sha256.Sum256([]byte(key))] }
