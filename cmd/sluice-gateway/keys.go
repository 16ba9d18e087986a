package main

import (
	"crypto/sha256"
	"net/http"
	"strings"
)

// keyring maps API keys to the environment they open.
type keyring struct {
	keys map[[sha256.Size]byte]string
}

func newKeyring(keys []Key) *keyring {
	k := &keyring{keys: make(map[[sha256.Size]byte]string, len(keys))}
	for _, key := range keys {
		k.keys[sha256.Sum256([]byte(key.Key))] = key.Type
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

// environment is the environment key opens, and whether key is known. Keys
// are looked up by their SHA-256, so the lookup time does not depend on how
// much of a wrong key matches a right one.
func (k *keyring) environment(key string) (string, bool) {
	env, ok := k.keys[sha256.Sum256([]byte(key))]
	return env, ok
}
