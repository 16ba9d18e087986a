package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse any bytes: it must never panic, and a config it
// accepts must export into YAML that loads back into the same tree (and
// does not grow on a second round). Seeds: every example config, the field
// tour of the export test, and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(everyField))
	for _, pattern := range []string{"../../deploy/examples/*.yaml", "../../deploy/gateway/sluice.yaml", "../testdata/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(Problems); !ok {
				t.Fatalf("Parse error is %T, not Problems: %v", err, err)
			}
			return
		}
		back := roundTrip(t, d)
		once, err := d.Export()
		if err != nil {
			t.Fatal(err)
		}
		twice, err := back.Export()
		if err != nil {
			t.Fatal(err)
		}
		if string(once) != string(twice) {
			t.Fatalf("export of the export differs:\n%s\n---\n%s", once, twice)
		}
	})
}
