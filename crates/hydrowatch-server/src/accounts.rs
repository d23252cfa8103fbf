//! People on the central server: users with a role and a password, their login sessions, and
//! operator API tokens for scripts.
//!
//! Invariants: no password or token is stored, only its hash: argon2id (a PHC string with its
//! salt and parameters) for passwords, SHA-256 for tokens (random, 192 bits, so a fast hash is
//! enough); a session is honoured only before its expiry; removing a user removes its sessions
//! and tokens in the same transaction.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngExt;

use crate::db::{Db, hash, new_token, random_token};
use crate::sql::{Arg, DbError};

/// What a person may do. Each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads every page and endpoint.
    Viewer,
    /// Also acknowledges, shelves, comments on and assigns alarms.
    Operator,
    /// Also manages users, tokens and notification rules.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// Its name (command line, database).
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A person known to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose.
    pub user: User,
    /// The token every form of this session must carry (against cross-site request forgery).
    pub csrf: String,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
}

/// Shortest password accepted (NIST SP 800-63B's minimum for a chosen password).
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted (hashing is bounded work).
pub const MAX_PASSWORD: usize = 256;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A user name that is not 1-64 letters, digits, '_', '-', '.' or '@'.
    #[error("user name {0:?}: use 1 to 64 letters, digits, '_', '-', '.' or '@'")]
    BadName(String),
    /// The name is taken.
    #[error("user {0:?} exists already")]
    Exists(String),
    /// No such user.
    #[error("no user {0:?} (add one with `hydrowatch serve user add NAME --role ROLE`)")]
    NoSuchUser(String),
    /// A password too short or too long.
    #[error("the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")]
    BadPassword,
    /// Hashing failed (not expected: the parameters are argon2's defaults).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A hash of nothing anybody types, checked when a login names no user (argon2's default
/// parameters, as every stored hash).
const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0nW1JgM8kYb7i0pmyeBc5JSx0f1xTAxh0x4n2m2bXrQ";

/// Whether `name` is a user name the server accepts.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

/// The argon2id hash (PHC string) of `password`, salted afresh.
fn hash_password(password: &str) -> Result<String, AccountError> {
    let bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&bytes).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` is the one `phc` was made from.
fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn user_of(name: String, role: &str) -> Result<User, DbError> {
    let role = Role::from_name(role)
        .ok_or_else(|| DbError::Column(1, "a role", role.chars().take(20).collect()))?;
    Ok(User { name, role })
}

impl Db {
    /// Adds user `name` with `role` and `password`.
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now: i64,
    ) -> Result<(), AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName(hydrowatch_core::prefix(name)));
        }
        if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&password.chars().count()) {
            return Err(AccountError::BadPassword);
        }
        let phc = hash_password(password)?;
        let added = self.write(|c| {
            c.exec(
                "INSERT INTO users(name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO NOTHING",
                &[
                    Arg::Text(Some(name)),
                    Arg::Text(Some(role.name())),
                    Arg::Text(Some(&phc)),
                    Arg::Int(now),
                ],
            )
        })?;
        if added == 0 {
            return Err(AccountError::Exists(name.into()));
        }
        Ok(())
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, DbError> {
        self.read(|c| {
            c.rows("SELECT name, role FROM users ORDER BY name", &[])?
                .iter()
                .map(|r| user_of(r.text(0)?, &r.text(1)?))
                .collect()
        })
    }

    /// Removes user `name` with its sessions and tokens; false when there was none.
    pub fn remove_user(&self, name: &str) -> Result<bool, DbError> {
        self.write(|c| {
            let who = [Arg::Text(Some(name))];
            c.exec("DELETE FROM sessions WHERE user_name = ?1", &who)?;
            c.exec("DELETE FROM operator_tokens WHERE user_name = ?1", &who)?;
            Ok(c.exec("DELETE FROM users WHERE name = ?1", &who)? > 0)
        })
    }

    /// The user `name` when `password` is theirs. An unknown name costs the same time as a
    /// wrong password (a hash is checked either way), so that timing does not tell names.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Option<User>, DbError> {
        if password.chars().count() > MAX_PASSWORD {
            return Ok(None);
        }
        let row = self.read(|c| {
            c.rows(
                "SELECT name, role, password_hash FROM users WHERE name = ?1",
                &[Arg::Text(Some(name))],
            )
        })?;
        match row.first() {
            Some(r) => {
                let phc = r.text(2)?;
                let user = user_of(r.text(0)?, &r.text(1)?)?;
                Ok(password_matches(password, &phc).then_some(user))
            }
            None => {
                password_matches(password, DECOY);
                Ok(None)
            }
        }
    }

    /// Opens a session of `user` lasting `seconds`; returns its token (the browser's cookie)
    /// and the session. Sessions past their expiry are deleted on the way.
    pub fn open_session(
        &self,
        user: &User,
        now: i64,
        seconds: i64,
    ) -> Result<(String, Session), DbError> {
        let (token, hashed) = new_token();
        let csrf = random_token();
        let expires_at = now + seconds;
        self.write(|c| {
            c.exec(
                "DELETE FROM sessions WHERE expires_at <= ?1",
                &[Arg::Int(now)],
            )?;
            c.exec(
                "INSERT INTO sessions(token_hash, user_name, csrf, expires_at) VALUES (?1, ?2, ?3, ?4)",
                &[
                    Arg::Text(Some(&hashed)),
                    Arg::Text(Some(&user.name)),
                    Arg::Text(Some(&csrf)),
                    Arg::Int(expires_at),
                ],
            )
        })?;
        Ok((
            token,
            Session {
                user: user.clone(),
                csrf,
                expires_at,
            },
        ))
    }

    /// The session of cookie `token`, if it is open at `now`.
    pub fn session(&self, token: &str, now: i64) -> Result<Option<Session>, DbError> {
        let hashed = hash(token);
        self.read(|c| {
            c.rows(
                "SELECT u.name, u.role, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                &[Arg::Text(Some(&hashed)), Arg::Int(now)],
            )?
            .first()
            .map(|r| {
                Ok(Session {
                    user: user_of(r.text(0)?, &r.text(1)?)?,
                    csrf: r.text(2)?,
                    expires_at: r.int(3)?,
                })
            })
            .transpose()
        })
    }

    /// Ends the session of cookie `token`.
    pub fn close_session(&self, token: &str) -> Result<(), DbError> {
        let hashed = hash(token);
        self.write(|c| {
            c.exec(
                "DELETE FROM sessions WHERE token_hash = ?1",
                &[Arg::Text(Some(&hashed))],
            )
            .map(drop)
        })
    }

    /// Issues an API token acting as user `name` and returns it (shown once; only its hash is
    /// kept). A user may have several.
    pub fn create_operator_token(&self, name: &str, now: i64) -> Result<String, AccountError> {
        let (token, hashed) = new_token();
        self.write(|c| {
            if c.rows("SELECT 1 FROM users WHERE name = ?1", &[Arg::Text(Some(name))])?
                .is_empty()
            {
                return Err(AccountError::NoSuchUser(hydrowatch_core::prefix(name)));
            }
            c.exec(
                "INSERT INTO operator_tokens(token_hash, user_name, created_at) VALUES (?1, ?2, ?3)",
                &[Arg::Text(Some(&hashed)), Arg::Text(Some(name)), Arg::Int(now)],
            )?;
            Ok(())
        })?;
        Ok(token)
    }

    /// Revokes one API token (the others of its user stay): the user it acted as, or `None`
    /// when no such token exists.
    pub fn revoke_operator_token(&self, token: &str) -> Result<Option<String>, DbError> {
        let hashed = hash(token);
        self.write(|c| {
            let who = c.rows(
                "SELECT user_name FROM operator_tokens WHERE token_hash = ?1",
                &[Arg::Text(Some(&hashed))],
            )?;
            let Some(row) = who.first() else {
                return Ok(None);
            };
            let name = row.text(0)?;
            c.exec(
                "DELETE FROM operator_tokens WHERE token_hash = ?1",
                &[Arg::Text(Some(&hashed))],
            )?;
            Ok(Some(name))
        })
    }

    /// The user an API token acts as.
    pub fn operator_for_token(&self, token: &str) -> Result<Option<User>, DbError> {
        let hashed = hash(token);
        self.read(|c| {
            c.rows(
                "SELECT u.name, u.role FROM operator_tokens t JOIN users u ON u.name = t.user_name
                 WHERE t.token_hash = ?1",
                &[Arg::Text(Some(&hashed))],
            )?
            .first()
            .map(|r| user_of(r.text(0)?, &r.text(1)?))
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_checks_only_its_password() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(password_matches("correct horse", &phc));
        assert!(!password_matches("correct hors", &phc));
        assert!(!password_matches("correct horse", "not a hash"));
        // The decoy costs what a real check costs: it parses, with the same parameters.
        let decoy = PasswordHash::new(DECOY).unwrap();
        assert_eq!(decoy.params, PasswordHash::new(&phc).unwrap().params);
        // Salted afresh: the same password never hashes alike.
        assert_ne!(phc, hash_password("correct horse").unwrap());
    }

    #[test]
    fn roles_read_back_and_order() {
        for r in Role::ALL {
            assert_eq!(Role::from_name(r.name()), Some(r));
        }
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert!(valid_name("ana.lopez@utility") && !valid_name("") && !valid_name("a b"));
    }
}
