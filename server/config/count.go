package config

// Descriptors counts the descriptors of the domain's tree, at every level: a
// descriptor with nested descriptors counts once, and each nested one once.
func (d *Domain) Descriptors() int {
	if d == nil || d.root == nil {
		return 0
	}
	return d.root.descendants()
}

// descendants counts the nodes below n.
func (n *node) descendants() int {
	total := 0
	for _, k := range n.keys {
		for _, c := range k.exact {
			total += 1 + c.descendants()
		}
		for i := range k.wild {
			total += 1 + k.wild[i].n.descendants()
		}
		if k.any != nil {
			total += 1 + k.any.descendants()
		}
	}
	return total
}
