// Command duckdb runs one SQL query with DuckDB, embedded through its Go
// binding, and prints the single value it returns and the time it took. It is
// the DuckDB peer of bench/search; a module of its own, so that the cgo
// library stays out of trailkeeper's build.
package main

import (
	"database/sql"
	"fmt"
	"log"
	"os"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: duckdb SQL")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	var v any
	if err := db.QueryRow(os.Args[1]).Scan(&v); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%v\t%s\n", v, time.Since(start))
}
