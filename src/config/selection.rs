//! Which hosts of a target a command acts on: roles, `deploy --hosts/--roles` (a canary), and
//! `run --hosts`/`--primary`; the target narrowed to them keeps its primary when it can.

use super::*;

impl Target {
    /// Whether host `host` (an index in `hosts`) carries `role`: it is listed under it, or
    /// under no role at all.
    pub fn carries(&self, host: usize, role: &str) -> bool {
        let listed = |hosts: &Vec<usize>| hosts.contains(&host);
        if !self.roles.values().any(listed) {
            return true;
        }
        self.roles.get(role).is_some_and(listed)
    }

    /// The hosts `--hosts` and `--roles` name (indices in `hosts`, in order): every host named,
    /// and every host carrying a role named; all hosts when neither names any.
    pub fn select(&self, hosts: &[String], roles: &[String]) -> Result<Vec<usize>> {
        if hosts.is_empty() && roles.is_empty() {
            return Ok((0..self.hosts.len().max(1)).collect());
        }
        if self.transport == TransportKind::Local {
            return Err(Error::usage(format!(
                "target {} runs on this machine; --hosts and --roles choose among ssh hosts",
                self.name
            )));
        }
        let mut chosen = vec![false; self.hosts.len()];
        for text in hosts {
            let wanted = HostSpec::parse(text).map_err(Error::usage)?;
            let found = self
                .hosts
                .iter()
                .position(|h| *h == wanted)
                .or_else(|| self.hosts.iter().position(|h| h.same_machine(&wanted)));
            match found {
                Some(i) => chosen[i] = true,
                None => {
                    return Err(Error::Usage {
                        message: format!("`{text}` is not a host of target {}", self.name),
                        hint: Some(format!(
                            "its hosts: {}",
                            self.hosts
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    })
                }
            }
        }
        for role in roles {
            let known = role == WEB_ROLE
                || self.roles.contains_key(role)
                || self.processes.values().any(|p| p.role == *role);
            if !known {
                return Err(Error::Usage {
                    message: format!("target {} has no role `{role}`", self.name),
                    hint: Some(
                        "roles are `web`, the keys of [targets.T.roles] and the processes' roles"
                            .into(),
                    ),
                });
            }
            for (i, slot) in chosen.iter_mut().enumerate() {
                *slot |= self.carries(i, role);
            }
        }
        Ok((0..self.hosts.len()).filter(|i| chosen[*i]).collect())
    }

    /// This target reduced to the hosts `selected` (indices in `hosts`, as [`Target::select`]
    /// gives them): roles follow their hosts; the primary stays the primary when selected,
    /// else the first selected host runs once-steps (`migrate`), and no `once` process and no
    /// schedule (the scheduler, the timers) is installed anywhere: the primary keeps running its
    /// own, and a second scheduler would fire every entry twice.
    pub fn subset(&self, selected: &[usize]) -> Target {
        if selected.len() == self.hosts.len().max(1) {
            return self.clone();
        }
        let mut sub = self.clone();
        sub.hosts = selected.iter().map(|&i| self.hosts[i].clone()).collect();
        sub.roles = self
            .roles
            .iter()
            .map(|(role, hosts)| {
                let kept = selected
                    .iter()
                    .enumerate()
                    .filter(|(_, old)| hosts.contains(old))
                    .map(|(new, _)| new)
                    .collect();
                (role.clone(), kept)
            })
            .collect();
        match selected.iter().position(|&i| i == self.primary) {
            Some(new) => sub.primary = new,
            None => {
                sub.primary = 0;
                sub.processes.retain(|_, p| !p.once);
                sub.schedule.clear();
            }
        }
        sub
    }

    /// This target as `deploy --hosts` and `--roles` narrow it; refused when that leaves some of its
    /// hosts out (on another release) without `--allow-mixed`.
    pub fn canary(&self, hosts: &[String], roles: &[String], allow_mixed: bool) -> Result<Target> {
        let target = self;
        let selected = target.select(hosts, roles)?;
        if selected.is_empty() {
            return Err(Error::usage(format!(
                "--hosts/--roles select no host of target {}",
                target.name
            )));
        }
        let left_out: Vec<String> = (0..target.hosts.len())
            .filter(|i| !selected.contains(i))
            .map(|i| target.hosts[i].to_string())
            .collect();
        if !left_out.is_empty() && !allow_mixed {
            return Err(Error::Refused {
                message: format!(
                    "deploying to {} of the {} hosts of {} would leave {} on the release they have: the target would run mixed releases",
                    selected.len(),
                    target.hosts.len(),
                    target.name,
                    left_out.join(", ")
                ),
                hint: "pass --allow-mixed for a canary, or deploy to every host".into(),
            });
        }
        Ok(target.subset(&selected))
    }

    /// What the deploy of `canary` (this target narrowed by [`Target::canary`]) says when it
    /// leaves out the primary that runs this target's singletons: that none of them changes.
    pub fn singletons_left(&self, canary: &Target) -> Option<String> {
        let primary = self.hosts.get(self.primary)?;
        if canary.hosts.contains(primary) {
            return None;
        }
        let mut names: Vec<String> = self
            .processes
            .iter()
            .filter(|(_, p)| p.once)
            .map(|(name, _)| name.clone())
            .collect();
        if !self.schedule.is_empty() {
            names.push(SCHEDULER.to_string());
        }
        if names.is_empty() {
            return None;
        }
        Some(format!(
            "no `once` process or schedule changes: {} keep running on the primary {primary}, which this canary leaves out, and none runs on the hosts it deploys",
            names.join(", ")
        ))
    }

    /// This target with only the hosts `run`'s and `console`'s `--hosts` names (names as written,
    /// host names, or `host:port`, comma-separated), or only its primary.
    pub fn only(&self, hosts: Option<&str>, primary: bool) -> Result<Target> {
        let target = self;
        let mut selected = target.clone();
        if target.hosts.is_empty() {
            if hosts.is_some() {
                return Err(Error::usage(format!(
                    "target {} runs on this machine: it has no hosts to choose from",
                    target.name
                )));
            }
            return Ok(selected);
        }
        let keep: Vec<usize> = match hosts {
            Some(list) => {
                let mut keep = Vec::new();
                for wanted in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    let found = target.hosts.iter().position(|h| {
                        let port = h.port.map(|p| format!("{}:{p}", h.host));
                        h.to_string() == wanted
                            || h.host == wanted
                            || port.as_deref() == Some(wanted)
                    });
                    match found {
                        Some(i) if !keep.contains(&i) => keep.push(i),
                        Some(_) => {}
                        None => {
                            return Err(Error::Usage {
                                message: format!("target {} has no host {wanted}", target.name),
                                hint: Some(format!(
                                    "its hosts: {}",
                                    target
                                        .hosts
                                        .iter()
                                        .map(ToString::to_string)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )),
                            })
                        }
                    }
                }
                keep.sort_unstable();
                keep
            }
            None if primary => vec![target.primary],
            None => (0..target.hosts.len()).collect(),
        };
        selected.hosts = keep.iter().map(|i| target.hosts[*i].clone()).collect();
        selected.primary = keep.iter().position(|i| *i == target.primary).unwrap_or(0);
        Ok(selected)
    }
}

/// Validates `[targets.T.roles]`: role names, and hosts that are the target's own, as indices
/// in `hosts`.
pub(super) fn validate_roles(
    source: &Source,
    target: &str,
    raw: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    hosts: &[HostSpec],
) -> Result<BTreeMap<String, Vec<usize>>> {
    let mut roles = BTreeMap::new();
    for (role, listed) in raw {
        let role_key = key_for(target, &format!("roles.{}", role.get_ref()));
        if !is_name(role.get_ref()) {
            return Err(source.error(
                role.span(),
                role_key,
                "role names are letters, digits, `_` or `-`",
            ));
        }
        let mut indices = Vec::new();
        for host in listed {
            let wanted = HostSpec::parse(host.get_ref())
                .map_err(|why| source.error(host.span(), role_key.clone(), why))?;
            let index = hosts.iter().position(|h| *h == wanted).ok_or_else(|| {
                source.error(
                    host.span(),
                    role_key.clone(),
                    format!("`{}` is not one of the target's hosts", host.get_ref()),
                )
            })?;
            indices.push(index);
        }
        roles.insert(role.into_inner(), indices);
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(aliases: &str) -> Config {
        let text = format!(
            "[project]\nname = \"hello\"\n[targets.t]\nhosts = [\"a@one:2222\", \"b@two\", \"c@three\"]\ndeploy_to = \"/srv/h\"\nenvironment = \"e\"\nprimary = \"b@two\"\n{aliases}"
        );
        Config::parse(Path::new("shipit.toml"), Path::new("."), &text).unwrap()
    }

    #[test]
    fn hosts_are_chosen_by_name_and_the_primary_follows() {
        let c = config("");
        let t = c.target("t").unwrap();
        let all = t.only(None, false).unwrap();
        assert_eq!(all.hosts.len(), 3);
        let primary = t.only(None, true).unwrap();
        assert_eq!(primary.hosts[0].to_string(), "b@two");
        let some = t.only(Some("three,one:2222"), false).unwrap();
        let names: Vec<String> = some.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["a@one:2222", "c@three"]);
        assert_eq!(some.primary, 0);
        let error = t.only(Some("four"), false).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.hint().unwrap().contains("b@two"), "{error}");
    }
}
