package sandbox

import (
	"net/url"
	"time"
)

type userXML struct {
	Path       string
	UserName   string
	UserId     string
	Arn        string
	CreateDate string
}

func (u *user) xml(acct string) userXML {
	return userXML{u.Path, u.Name, u.ID, "arn:aws:iam::" + acct + ":user" + u.Path + u.Name, u.Created.Format(time.RFC3339)}
}

func noSuchUser(name string) error {
	return errorf(404, "NoSuchEntity", "The user with name %s cannot be found.", name)
}

// userActions are IAM's user calls: users, their inline policies and access keys.
func (s *Sandbox) userActions() map[string]queryHandler {
	withUser := func(action string, fn func(c *call, p url.Values, u *user) (any, error)) queryHandler {
		return withEntity(s, "UserName", "user", action, func(a *account, name string) *user { return a.Users[name] }, noSuchUser, fn)
	}
	actions := inlinePolicyActions(s, "User", 2048, withUser,
		func(u *user) string { return u.Name }, func(u *user) map[string]string { return u.Inline })
	for name, h := range map[string]queryHandler{
		"CreateUser": func(c *call, p url.Values) (any, error) {
			if err := required(p, "UserName"); err != nil {
				return nil, err
			}
			name := p.Get("UserName")
			if !roleNameRE().MatchString(name) {
				return nil, errorf(400, "ValidationError", "The specified value for userName is invalid.")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if err := s.iamAuthorize(c, "iam:CreateUser", "arn:aws:iam::"+c.caller.Account+":user/"+name); err != nil {
				return nil, err
			}
			a := s.st.account(c.caller.Account)
			if a.Users[name] != nil {
				return nil, errorf(409, "EntityAlreadyExists", "User with name %s already exists.", name)
			}
			path := p.Get("Path")
			if path == "" {
				path = "/"
			}
			u := &user{Name: name, ID: randomID("AIDA", 17), Path: path, Created: time.Now().UTC(), Inline: map[string]string{}}
			a.Users[name] = u
			s.changed()
			return struct{ User userXML }{u.xml(c.caller.Account)}, nil
		},
		"GetUser": withUser("GetUser", func(c *call, p url.Values, u *user) (any, error) {
			c.readOnly = true
			return struct{ User userXML }{u.xml(c.caller.Account)}, nil
		}),
		"DeleteUser": withUser("DeleteUser", func(c *call, p url.Values, u *user) (any, error) {
			keys := 0
			for _, k := range s.st.Keys {
				if k.Account == c.caller.Account && k.User == u.Name {
					keys++
				}
			}
			if len(u.Inline) > 0 || keys > 0 {
				return nil, errorf(409, "DeleteConflict", "Cannot delete entity, must delete policies and access keys first.")
			}
			delete(s.st.account(c.caller.Account).Users, u.Name)
			return nil, nil
		}),
		"CreateAccessKey": withUser("CreateAccessKey", func(c *call, p url.Values, u *user) (any, error) {
			id := randomID("AKIA", 16)
			k := &userKey{Account: c.caller.Account, User: u.Name, Secret: randomHex(20), Created: time.Now().UTC()}
			s.st.Keys[id] = k
			return struct {
				AccessKey struct{ UserName, AccessKeyId, Status, SecretAccessKey, CreateDate string }
			}{struct{ UserName, AccessKeyId, Status, SecretAccessKey, CreateDate string }{u.Name, id, "Active", k.Secret, k.Created.Format(time.RFC3339)}}, nil
		}),
		"ListAccessKeys": withUser("ListAccessKeys", func(c *call, p url.Values, u *user) (any, error) {
			c.readOnly = true
			type meta struct{ UserName, AccessKeyId, Status, CreateDate string }
			var out struct {
				AccessKeyMetadata []meta `xml:"AccessKeyMetadata>member"`
				IsTruncated       bool
			}
			for id, k := range s.st.Keys {
				if k.Account == c.caller.Account && k.User == u.Name {
					out.AccessKeyMetadata = append(out.AccessKeyMetadata, meta{u.Name, id, "Active", k.Created.Format(time.RFC3339)})
				}
			}
			return out, nil
		}),
		"DeleteAccessKey": withUser("DeleteAccessKey", func(c *call, p url.Values, u *user) (any, error) {
			k := s.st.Keys[p.Get("AccessKeyId")]
			if k == nil || k.Account != c.caller.Account || k.User != u.Name {
				return nil, errorf(404, "NoSuchEntity", "The Access Key with id %s cannot be found.", p.Get("AccessKeyId"))
			}
			delete(s.st.Keys, p.Get("AccessKeyId"))
			return nil, nil
		}),
	} {
		actions[name] = h
	}
	return actions
}
