package main

import (
	"slices"
	"testing"
)

func TestRequestSetsTakenInTurn(t *testing.T) {
	one := requestSets(2, 1, slices.Clone[[]string])
	if len(one) != 1 || !slices.Equal(one[0], []string{"d0", "d1"}) {
		t.Errorf("one set: %v, want [[d0 d1]]", one)
	}
	sets := requestSets(1, 4, slices.Clone[[]string])
	// Two callers over four sets: caller 1 starts half-way and wraps.
	next := inTurn(sets, 1, 2)
	var got []string
	for range 5 {
		got = append(got, next()[0])
	}
	if want := []string{"d0-c2", "d0-c3", "d0-c0", "d0-c1", "d0-c2"}; !slices.Equal(got, want) {
		t.Errorf("caller 1 of 2 took %v, want %v", got, want)
	}
}
