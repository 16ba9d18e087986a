// Command printversion prints version.String(), for the test of -ldflags -X.
package main

import (
	"fmt"

	"github.com/sluice-rl/sluice/internal/version"
)

func main() { fmt.Println(version.String()) }
