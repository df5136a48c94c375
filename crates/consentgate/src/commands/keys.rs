//! `consentgate keys init|show|export-member-key`: the log's signing key — one Ed25519 seed,
//! kept in a 0600 file in the Go `note` text form, from which the member-key VRF secret is also
//! derived — and the member-key secret alone, for a distributed build's executors (they derive
//! member keys where the members are, and must not be able to sign checkpoints).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cg_proof::member_key::MemberKeySecret;
use cg_proof::note::NoteSigner;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::errors::Hinted;
use crate::printer::Printer;

/// The default log origin (the checkpoint's first line and the key's name).
pub const DEFAULT_ORIGIN: &str = "consentgate.local/log";

/// `--key PATH`, shared by every command that signs or derives member keys.
#[derive(Clone, Debug, Args)]
pub struct KeyArgs {
    /// The log's private key file (default: `$CG_DATA_DIR/log.key`, `.consentgate/log.key`).
    #[arg(long, value_name = "PATH", env = "CG_LOG_KEY")]
    pub key: Option<PathBuf>,
}

impl KeyArgs {
    /// The key file's path.
    pub fn path(&self) -> PathBuf {
        self.key.clone().unwrap_or_else(|| {
            let dir = std::env::var("CG_DATA_DIR").unwrap_or_else(|_| ".consentgate".to_owned());
            Path::new(&dir).join("log.key")
        })
    }

    /// The key at `path`, if a path is given (for commands where the key is optional).
    pub fn load_optional(path: &Option<PathBuf>) -> anyhow::Result<Option<LogKey>> {
        path.as_ref()
            .map(|p| {
                KeyArgs {
                    key: Some(p.clone()),
                }
                .load()
            })
            .transpose()
    }

    /// Loads the key; a missing file is an error with a hint.
    pub fn load(&self) -> anyhow::Result<LogKey> {
        let path = self.path();
        if !path.exists() {
            return Err(Hinted {
                message: format!("no log key at `{}`", path.display()),
                hint: "create one with `consentgate keys init` (or pass --key PATH)".into(),
            }
            .into());
        }
        LogKey::read(&path)
    }

    /// Loads the key, creating it (with the default origin) if the file does not exist.
    pub fn load_or_create(&self, printer: Printer) -> anyhow::Result<LogKey> {
        let path = self.path();
        if !path.exists() {
            let key = LogKey::create(&path, DEFAULT_ORIGIN)?;
            printer.status(
                "Created",
                format!(
                    "the log key {} (verifier key: {})",
                    path.display(),
                    key.signer.verifier_key()
                ),
            );
            return Ok(key);
        }
        LogKey::read(&path)
    }
}

/// The log key: the checkpoint signer and the member-key VRF secret derived from it.
#[derive(Debug)]
pub struct LogKey {
    /// Signs checkpoints.
    pub signer: NoteSigner,
    /// Derives member keys.
    pub member_keys: MemberKeySecret,
}

impl LogKey {
    fn from_signer(signer: NoteSigner) -> anyhow::Result<LogKey> {
        let member_keys = MemberKeySecret::from_seed(&signer.seed())
            .map_err(|e| anyhow::anyhow!("cannot derive the member-key secret: {e}"))?;
        Ok(LogKey {
            signer,
            member_keys,
        })
    }

    /// Reads a key file.
    pub fn read(path: &Path) -> anyhow::Result<LogKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the log key `{}`", path.display()))?;
        let signer = NoteSigner::parse_private_key(&text)
            .with_context(|| format!("`{}` is not a consentgate log key", path.display()))?;
        LogKey::from_signer(signer)
    }

    /// Creates a new key file (mode 0600; never overwrites: two processes racing both end up
    /// with the file that won).
    pub fn create(path: &Path, origin: &str) -> anyhow::Result<LogKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
        let signer = NoteSigner::from_seed(origin, &seed)?;
        match create_private(path, format!("{}\n", signer.private_key()).as_bytes()) {
            Ok(()) => LogKey::from_signer(signer),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => LogKey::read(path),
            Err(e) => Err(e).with_context(|| format!("cannot create `{}`", path.display())),
        }
    }
}

/// Creates `path` (mode 0600) holding `contents`, whole or not at all: a private temporary
/// file is written and synced, then linked into place, so an existing file is never replaced
/// (`AlreadyExists`) and a crash never leaves half a secret. The directory is created (0700)
/// if missing and synced after the link.
fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    cg_io::private_dir(dir)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = open_private(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the log's Ed25519 key (file mode 0600) and print its verifier key.
    Init(InitArgs),
    /// Print the verifier key of an existing log key.
    Show(ShowArgs),
    /// Write the member-key secret alone (derived from the log key; it cannot sign
    /// checkpoints) to a new 0600 file, for `consentgate executor --member-key`.
    ExportMemberKey(ExportMemberKeyArgs),
}

/// Arguments of `keys export-member-key`.
#[derive(Debug, Args)]
pub struct ExportMemberKeyArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The file to create (mode 0600; an existing file is never replaced).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads a member-key secret written by `keys export-member-key`; a file others can read is
/// refused (it is a secret, as the log key is).
pub fn read_member_key(path: &Path) -> anyhow::Result<MemberKeySecret> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read the member key `{}`", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Hinted {
                message: format!(
                    "the member key `{}` can be read by others (mode {:o})",
                    path.display(),
                    mode & 0o777
                ),
                hint: format!("run `chmod 600 {}`", path.display()),
            }
            .into());
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the member key `{}`", path.display()))?;
    MemberKeySecret::from_secret_file_text(&text).with_context(|| {
        format!(
            "`{}` is not a member key (write one with `consentgate keys export-member-key`)",
            path.display()
        )
    })
}

#[derive(Serialize)]
struct ExportedInfo {
    member_key_file: String,
    vrf_public_key: String,
}

/// Arguments of `keys init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The log's origin: the first line of every checkpoint, and the key's name (no spaces or `+`).
    #[arg(long, default_value = DEFAULT_ORIGIN)]
    pub origin: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `keys show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct KeyInfo {
    key_file: String,
    origin: String,
    verifier_key: String,
    vrf_public_key: String,
}

fn info(path: &Path, key: &LogKey) -> KeyInfo {
    KeyInfo {
        key_file: path.display().to_string(),
        origin: key.signer.name().to_owned(),
        verifier_key: key.signer.verifier_key(),
        vrf_public_key: cg_proof::hex(&key.member_keys.public_key()),
    }
}

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Init(a) => {
            let path = a.key.path();
            if path.exists() {
                return Err(Hinted {
                    message: format!("a log key already exists at `{}`", path.display()),
                    hint: "a log's key is never replaced (old checkpoints would stop verifying); use `consentgate keys show`, or pass another --key".into(),
                }
                .into());
            }
            let key = LogKey::create(&path, &a.origin)?;
            printer.status("Created", format!("{} (mode 0600)", path.display()));
            let i = info(&path, &key);
            Printer {
                json: a.json,
                ..printer
            }
            .data(&i, || format!("{}\n", i.verifier_key))
        }
        KeysCommand::ExportMemberKey(a) => {
            let key = a.key.load()?;
            let text = key.member_keys.secret_file_text();
            create_private(&a.out, text.as_bytes()).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::Error::new(Hinted {
                        message: format!("`{}` already exists", a.out.display()),
                        hint:
                            "a member key file is never replaced; remove it or choose another --out"
                                .into(),
                    })
                } else {
                    anyhow::Error::new(e).context(format!("cannot create `{}`", a.out.display()))
                }
            })?;
            printer.status(
                "Exported",
                format!("the member key to {} (mode 0600)", a.out.display()),
            );
            let i = ExportedInfo {
                member_key_file: a.out.display().to_string(),
                vrf_public_key: cg_proof::hex(&key.member_keys.public_key()),
            };
            Printer {
                json: a.json,
                ..printer
            }
            .data(&i, || format!("{}\n", i.vrf_public_key))
        }
        KeysCommand::Show(a) => {
            let key = a.key.load()?;
            let i = info(&a.key.path(), &key);
            Printer {
                json: a.json,
                ..printer
            }
            .data(&i, || format!("{}\n", i.verifier_key))
        }
    }
}
