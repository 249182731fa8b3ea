//! `mcpgate completions <shell>` and `mcpgate man`: generated from the clap
//! definition, so they list exactly the commands and flags the binary has.
//! The Debian package ships both (packaging/build.sh).

use std::io::Write as _;
use std::process::ExitCode;

/// The completion script of `cmd` (the whole CLI) for `shell`, on stdout.
pub(crate) fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> ExitCode {
    // Rendered first: clap_complete panics on a write error (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mcpgate", &mut script);
    print_all(&script, "the completion script")
}

/// The manual page of `cmd` (the whole CLI), roff on stdout.
pub(crate) fn man(cmd: clap::Command) -> ExitCode {
    let mut page = Vec::new();
    match clap_mangen::Man::new(cmd).render(&mut page) {
        Ok(()) => print_all(&page, "the manual page"),
        Err(e) => {
            eprintln!("mcpgate: cannot render the manual page: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_all(bytes: &[u8], what: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgate: cannot write {what}: {e}");
            ExitCode::from(1)
        }
    }
}
