package config

// Source is one config document held in memory, in the file format: what
// one config file would hold. Name stands for the file's name in problems and
// in Domain.File.
type Source struct {
	Name string
	Data []byte
}

// LoadSources builds a Set from documents held in memory with exactly the
// checks Load applies to files: each is parsed as one file, and a domain in
// two documents is merged or refused as o says. The config pushed over xDS
// loads this way, so that it is validated as a file reload is.
func LoadSources(docs []Source, o LoadOptions) (*Set, error) {
	srcs := make([]source, len(docs))
	for i, d := range docs {
		srcs[i] = source{name: d.Name, data: d.Data}
	}
	return build(srcs, o)
}
