package sandbox

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The Glue Data Catalog and Athena's workgroups and named queries, as far as
// apply uses them: the catalog keeps databases and tables as given, Athena
// keeps workgroups and named queries (its queries: athenaquery.go, athenaexec.go). JSON 1.1 protocol,
// with each service's own error codes.

type glueDatabase struct {
	Input   map[string]any            `json:"input"`
	Created time.Time                 `json:"created"`
	Tables  map[string]map[string]any `json:"tables"` // name -> TableInput as given, with times
}

type workgroup struct {
	Name          string         `json:"name"`
	Description   string         `json:"description,omitempty"`
	Configuration map[string]any `json:"configuration,omitempty"`
	Created       time.Time      `json:"created"`
}

type namedQuery struct {
	ID, Name, Description, Database, QueryString, WorkGroup string
}

// catalogKey scopes Glue and Athena resources to an account and region.
func catalogKey(c *call, name string) string { return c.caller.Account + "/" + c.region + "/" + name }

var (
	glueNameRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9_]{1,255}$`) }) // Athena reads lower-case names only
	workgroupNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9._-]{1,128}$`) })
)

func obj(in map[string]any, k string) map[string]any {
	m, _ := in[k].(map[string]any)
	return m
}

func (s *Sandbox) glueActions() map[string]jsonHandler {
	notFound := func(format string, a ...any) error { return errorf(400, "EntityNotFoundException", format, a...) }
	invalid := func(format string, a ...any) error { return errorf(400, "InvalidInputException", format, a...) }
	db := func(c *call, name string) (*glueDatabase, error) {
		d := s.st.Glue[catalogKey(c, name)]
		if d == nil {
			return nil, notFound("Database %s not found.", name)
		}
		return d, nil
	}
	checkTable := func(t map[string]any) error {
		name := str(t, "Name")
		if !glueNameRE().MatchString(name) {
			return invalid("Table name %q: 1 to 255 lower-case letters, digits and underscores", name)
		}
		sd := obj(t, "StorageDescriptor")
		cols, _ := sd["Columns"].([]any)
		if len(cols) == 0 {
			return invalid("a table needs StorageDescriptor.Columns")
		}
		for _, list := range [][]any{cols, anyList(t["PartitionKeys"])} {
			for _, c := range list {
				col, _ := c.(map[string]any)
				if str(col, "Name") == "" || str(col, "Type") == "" {
					return invalid("every column needs a Name and a Type")
				}
			}
		}
		if loc := str(sd, "Location"); !strings.HasPrefix(loc, "s3://") {
			return invalid("StorageDescriptor.Location %q is not an s3:// location", loc)
		}
		return nil
	}
	return map[string]jsonHandler{
		"CreateDatabase": func(c *call, in map[string]any) (any, error) {
			input := obj(in, "DatabaseInput")
			name := str(input, "Name")
			if !glueNameRE().MatchString(name) {
				return nil, invalid("Database name %q: 1 to 255 lower-case letters, digits and underscores", name)
			}
			if s.st.Glue[catalogKey(c, name)] != nil {
				return nil, errorf(400, "AlreadyExistsException", "Database already exists.")
			}
			s.st.Glue[catalogKey(c, name)] = &glueDatabase{Input: input, Created: time.Now().UTC(), Tables: map[string]map[string]any{}}
			return map[string]any{}, nil
		},
		"GetDatabase": func(c *call, in map[string]any) (any, error) {
			d, err := db(c, str(in, "Name"))
			if err != nil {
				return nil, err
			}
			out := map[string]any{"Name": str(in, "Name"), "CatalogId": c.caller.Account, "CreateTime": float64(d.Created.Unix())}
			for k, v := range d.Input {
				if k != "Name" {
					out[k] = v
				}
			}
			return map[string]any{"Database": out}, nil
		},
		"CreateTable": func(c *call, in map[string]any) (any, error) {
			d, err := db(c, str(in, "DatabaseName"))
			if err != nil {
				return nil, err
			}
			t := obj(in, "TableInput")
			if err := checkTable(t); err != nil {
				return nil, err
			}
			if d.Tables[str(t, "Name")] != nil {
				return nil, errorf(400, "AlreadyExistsException", "Table already exists.")
			}
			t["CreateTime"], t["UpdateTime"] = float64(time.Now().Unix()), float64(time.Now().Unix())
			d.Tables[str(t, "Name")] = t
			return map[string]any{}, nil
		},
		"UpdateTable": func(c *call, in map[string]any) (any, error) {
			d, err := db(c, str(in, "DatabaseName"))
			if err != nil {
				return nil, err
			}
			t := obj(in, "TableInput")
			old := d.Tables[str(t, "Name")]
			if old == nil {
				return nil, notFound("Table %s not found.", str(t, "Name"))
			}
			if err := checkTable(t); err != nil {
				return nil, err
			}
			t["CreateTime"], t["UpdateTime"] = old["CreateTime"], float64(time.Now().Unix())
			d.Tables[str(t, "Name")] = t
			return map[string]any{}, nil
		},
		"GetTable": func(c *call, in map[string]any) (any, error) {
			d, err := db(c, str(in, "DatabaseName"))
			if err != nil {
				return nil, err
			}
			t := d.Tables[str(in, "Name")]
			if t == nil {
				return nil, notFound("Table %s not found.", str(in, "Name"))
			}
			out := map[string]any{"DatabaseName": str(in, "DatabaseName"), "CatalogId": c.caller.Account}
			for k, v := range t {
				out[k] = v
			}
			return map[string]any{"Table": out}, nil
		},
		"DeleteTable": func(c *call, in map[string]any) (any, error) {
			d, err := db(c, str(in, "DatabaseName"))
			if err != nil {
				return nil, err
			}
			if d.Tables[str(in, "Name")] == nil {
				return nil, notFound("Table %s not found.", str(in, "Name"))
			}
			delete(d.Tables, str(in, "Name"))
			return map[string]any{}, nil
		},
	}
}

func anyList(v any) []any {
	l, _ := v.([]any)
	return l
}

func (s *Sandbox) athenaActions() map[string]jsonHandler {
	invalid := func(format string, a ...any) error { return errorf(400, "InvalidRequestException", format, a...) }
	group := func(c *call, name string) (*workgroup, error) {
		if name == "" {
			name = "primary"
		}
		w := s.st.Workgroups[catalogKey(c, name)]
		if w == nil && name != "primary" {
			return nil, invalid("WorkGroup %s is not found.", name)
		}
		if w == nil { // every account and region has the primary workgroup
			w = &workgroup{Name: "primary", Created: time.Now().UTC()}
		}
		return w, nil
	}
	checkResults := func(cfg map[string]any) error {
		if loc, ok := obj(cfg, "ResultConfiguration")["OutputLocation"].(string); ok && !strings.HasPrefix(loc, "s3://") {
			return invalid("OutputLocation %q is not an s3:// location", loc)
		}
		return nil
	}
	actions := s.athenaQueryActions(group, invalid)
	for name, h := range map[string]jsonHandler{
		"CreateWorkGroup": func(c *call, in map[string]any) (any, error) {
			name := str(in, "Name")
			if !workgroupNameRE().MatchString(name) {
				return nil, invalid("WorkGroup name %q: 1 to 128 letters, digits, periods, underscores and hyphens", name)
			}
			if s.st.Workgroups[catalogKey(c, name)] != nil || name == "primary" {
				return nil, invalid("WorkGroup %s is already created", name)
			}
			if err := checkResults(obj(in, "Configuration")); err != nil {
				return nil, err
			}
			s.st.Workgroups[catalogKey(c, name)] = &workgroup{Name: name, Description: str(in, "Description"), Configuration: obj(in, "Configuration"), Created: time.Now().UTC()}
			return map[string]any{}, nil
		},
		"GetWorkGroup": func(c *call, in map[string]any) (any, error) {
			w, err := group(c, str(in, "WorkGroup"))
			if err != nil {
				return nil, err
			}
			return map[string]any{"WorkGroup": map[string]any{"Name": w.Name, "State": "ENABLED", "Description": w.Description,
				"Configuration": w.Configuration, "CreationTime": float64(w.Created.Unix())}}, nil
		},
		"UpdateWorkGroup": func(c *call, in map[string]any) (any, error) {
			w, err := group(c, str(in, "WorkGroup"))
			if err != nil || w.Name == "primary" && s.st.Workgroups[catalogKey(c, "primary")] == nil {
				return nil, invalid("WorkGroup %s is not found.", str(in, "WorkGroup"))
			}
			if loc, ok := obj(obj(in, "ConfigurationUpdates"), "ResultConfigurationUpdates")["OutputLocation"].(string); ok {
				if !strings.HasPrefix(loc, "s3://") {
					return nil, invalid("OutputLocation %q is not an s3:// location", loc)
				}
				if w.Configuration == nil {
					w.Configuration = map[string]any{}
				}
				rc := obj(w.Configuration, "ResultConfiguration")
				if rc == nil {
					rc = map[string]any{}
				}
				rc["OutputLocation"] = loc
				w.Configuration["ResultConfiguration"] = rc
			}
			return map[string]any{}, nil
		},
		"CreateNamedQuery": func(c *call, in map[string]any) (any, error) {
			q := &namedQuery{ID: uuid(), Name: str(in, "Name"), Description: str(in, "Description"), Database: str(in, "Database"),
				QueryString: str(in, "QueryString"), WorkGroup: str(in, "WorkGroup")}
			if q.Name == "" || q.Database == "" || q.QueryString == "" {
				return nil, invalid("a named query needs Name, Database and QueryString")
			}
			w, err := group(c, q.WorkGroup)
			if err != nil {
				return nil, err
			}
			q.WorkGroup = w.Name
			s.st.NamedQueries[catalogKey(c, q.ID)] = q
			return map[string]any{"NamedQueryId": q.ID}, nil
		},
		"ListNamedQueries": func(c *call, in map[string]any) (any, error) {
			w, err := group(c, str(in, "WorkGroup"))
			if err != nil {
				return nil, err
			}
			ids := []string{}
			for k, q := range s.st.NamedQueries {
				if strings.HasPrefix(k, catalogKey(c, "")) && q.WorkGroup == w.Name {
					ids = append(ids, q.ID)
				}
			}
			slices.Sort(ids)
			limit := 50
			if n, ok := in["MaxResults"].(float64); ok && n > 0 {
				limit = min(int(n), 50)
			}
			ids, next := s.page(ids, str(in, "NextToken"), limit)
			out := map[string]any{"NamedQueryIds": ids}
			if next != "" {
				out["NextToken"] = next
			}
			return out, nil
		},
		"BatchGetNamedQuery": func(c *call, in map[string]any) (any, error) {
			found, missing := []any{}, []any{}
			for _, id := range anyList(in["NamedQueryIds"]) {
				idStr, _ := id.(string)
				q := s.st.NamedQueries[catalogKey(c, idStr)]
				if q == nil {
					missing = append(missing, map[string]any{"NamedQueryId": idStr, "ErrorCode": "INVALID_INPUT", "ErrorMessage": "not found"})
					continue
				}
				found = append(found, map[string]any{"NamedQueryId": q.ID, "Name": q.Name, "Description": q.Description,
					"Database": q.Database, "QueryString": q.QueryString, "WorkGroup": q.WorkGroup})
			}
			return map[string]any{"NamedQueries": found, "UnprocessedNamedQueryIds": missing}, nil
		},
		"UpdateNamedQuery": func(c *call, in map[string]any) (any, error) {
			q := s.st.NamedQueries[catalogKey(c, str(in, "NamedQueryId"))]
			if q == nil {
				return nil, invalid("NamedQuery %s is not found.", str(in, "NamedQueryId"))
			}
			q.Name, q.Description, q.QueryString = str(in, "Name"), str(in, "Description"), str(in, "QueryString")
			return map[string]any{}, nil
		},
	} {
		actions[name] = h
	}
	return actions
}
