// Package demo seeds demo data: companies with sandbox connections in the
// mixed scenarios configured under demo: in configs/demo.yaml, so `make
// run` shows statuses moving without a real utility website.
//
// Seeding is for an empty store only: when any company exists, Seed does
// nothing, so restarting a demo on a persistent Redis never duplicates it.
package demo

import (
	"context"
	"fmt"
	"sort"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/store"
)

// Password is the password of every demo connection; the sandbox ignores it.
const Password = "demo-password"

// Summary tells what Seed created.
type Summary struct {
	// Skipped reports that the store already had companies: nothing was created.
	Skipped bool
	// Companies and Connections count what was created.
	Companies   int
	Connections int
	// ByUsername counts the created connections per sandbox username.
	ByUsername map[string]int
}

// Seed creates the companies of spec, each with its sandbox connections
// (datasource sandbox, counts per username), unless the store already has a
// company. Connections are PENDING and due at once, so the first scheduler
// tick checks them. Within a company, usernames are created in sorted order
// so a seed is reproducible. On error, what was created so far stays and the
// summary counts it.
func Seed(ctx context.Context, st *store.Store, spec configs.Demo) (Summary, error) {
	sum := Summary{ByUsername: map[string]int{}}
	existing, err := st.ListCompanies(ctx)
	if err != nil {
		return sum, fmt.Errorf("demo: read companies: %w", err)
	}
	if len(existing) > 0 {
		sum.Skipped = true
		return sum, nil
	}
	for _, co := range spec.Companies {
		c, err := st.CreateCompany(ctx, store.NewCompany{Name: co.Name, AutoTrack: co.AutoTrack})
		if err != nil {
			return sum, fmt.Errorf("demo: create company %q: %w", co.Name, err)
		}
		sum.Companies++
		users := make([]string, 0, len(co.Connections))
		for u := range co.Connections {
			users = append(users, u)
		}
		sort.Strings(users)
		var ins []store.NewConnection
		for _, u := range users {
			for i := 1; i <= co.Connections[u]; i++ {
				ins = append(ins, store.NewConnection{
					Datasource:  sandbox.Datasource,
					Name:        fmt.Sprintf("%s #%d", u, i),
					Credentials: checks.Credentials{Username: u, Password: Password},
				})
			}
		}
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("demo: seeding interrupted: %w", err)
		}
		// One pipelined round trip per few hundred connections.
		created, err := st.CreateConnections(ctx, c.ID, ins)
		sum.Connections += len(created)
		for _, in := range ins[:len(created)] {
			sum.ByUsername[in.Credentials.Username]++
		}
		if err != nil {
			return sum, fmt.Errorf("demo: create connections of %q: %w", co.Name, err)
		}
	}
	return sum, nil
}
