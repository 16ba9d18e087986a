// Package lua holds Sluice's Redis scripts, embedded from the .lua files beside
// this one, each behind one typed Go wrapper that validates its input and the
// shape of the script's reply.
package lua
