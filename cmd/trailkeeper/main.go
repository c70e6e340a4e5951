// Command trailkeeper keeps every AWS account's CloudTrail logs in one
// tamper-proof archive without AWS Organizations.
package main

import (
	"os"

	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/watch"
)

func main() {
	if watch.IsFunction() { // deployed by apply as the watch function's bootstrap
		watch.RunFunction()
		return
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
