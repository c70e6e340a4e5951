package status

// checkAthena says, with athena: in the config, which sources no Glue table
// projects: their events are absent from every Athena query, silently (a
// trail writing under a key prefix the tables do not know, or a table
// dropped by hand). It reads the catalog plan observed.
func (ck *checker) checkAthena() {
	cat := ck.archive.Catalog
	if !ck.c.Athena.Enabled || cat == nil {
		return
	}
	for _, s := range ck.c.Sources {
		st := ck.states[s.AccountID]
		if st == nil || cat.Covers(ck.c.Archive.Bucket, st.Trail, s.AccountID) {
			continue
		}
		ck.add(ck.account(s.AccountID), Warning, "athena-missing-source", s.AccountID, applyFix+" (it keeps a Glue table per key prefix)",
			"no Athena table in database %s projects this account's logs under s3://%s/%s: Athena queries leave its events out",
			ck.c.Athena.Database, ck.c.Archive.Bucket, st.Trail.LogPrefix()+s.AccountID+"/")
	}
}
