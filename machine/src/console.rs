//! The host console for `-nographic` / `-serial stdio`: stdin in raw mode
//! when it is a terminal (restored on exit, on panic and on SIGTERM/SIGHUP/
//! SIGINT/SIGQUIT), a reader thread that turns keystrokes into
//! [`HostInput`]s for the machine's one input doorway, and QEMU's Ctrl-A
//! escapes: Ctrl-A X quits, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A H lists
//! them.

use kagami_machine::pc::HostInput;
use std::io::Read;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

/// The terminal settings before kagami changed them (restored at exit).
static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);
/// A copy the signal handler can read without locking.
static mut SAVED_FOR_SIGNAL: Option<libc::termios> = None;

const CTRL_A: u8 = 0x01;

/// Restores the terminal when dropped.
pub struct RawMode(());

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    if let Some(t) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take() {
        // SAFETY: tcsetattr on fd 0 with a termios that tcgetattr filled in.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: only async-signal-safe calls (tcsetattr, signal, raise); the
    // static was written once before the handler was installed.
    unsafe {
        if let Some(t) = *std::ptr::addr_of!(SAVED_FOR_SIGNAL) {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Is stdin a terminal?
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(0) == 1 }
}

/// Put the terminal on stdin in raw mode (no echo, no line editing, no
/// signals from keys: Ctrl-C goes to the guest). Returns None when stdin is
/// not a terminal.
pub fn enter_raw_mode() -> Option<RawMode> {
    if !stdin_is_tty() {
        return None;
    }
    // SAFETY: termios is plain data; tcgetattr fills it in or fails.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 is a terminal (checked above); t is a valid termios.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return None;
    }
    *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    // SAFETY: written before any handler that reads it is installed, and
    // never again.
    unsafe {
        SAVED_FOR_SIGNAL = Some(t);
    }
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        prev_hook(info);
    }));
    // SAFETY: installing a handler that only calls async-signal-safe functions.
    unsafe {
        for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    let mut raw = t;
    raw.c_iflag &= !(libc::IGNBRK | libc::BRKINT | libc::PARMRK | libc::ISTRIP | libc::INLCR | libc::IGNCR | libc::ICRNL | libc::IXON);
    raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
    // Output processing stays on, so the guest's "\n" still returns the carriage.
    raw.c_oflag |= libc::OPOST;
    raw.c_cc[libc::VMIN] = 1;
    raw.c_cc[libc::VTIME] = 0;
    // SAFETY: fd 0 is a terminal; raw is a valid termios.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &raw);
    }
    Some(RawMode(()))
}

/// The Ctrl-A escape state machine: bytes in, inputs out.
#[derive(Default)]
pub struct Escapes {
    after_ctrl_a: bool,
}

impl Escapes {
    /// Translate typed bytes into machine input for serial port 0.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<HostInput>) {
        let mut pass = Vec::new();
        for &b in bytes {
            if self.after_ctrl_a {
                self.after_ctrl_a = false;
                match b {
                    b'x' | b'X' => {
                        flush(&mut pass, out);
                        out.push(HostInput::Quit);
                        return;
                    }
                    CTRL_A => pass.push(CTRL_A),
                    b'h' | b'H' | b'?' => {
                        eprint!("\r\nC-a x    exit kagami\r\nC-a C-a  send C-a\r\nC-a h    this help\r\n");
                    }
                    _ => {}
                }
            } else if b == CTRL_A {
                self.after_ctrl_a = true;
            } else {
                pass.push(b);
            }
        }
        flush(&mut pass, out);
    }
}

fn flush(pass: &mut Vec<u8>, out: &mut Vec<HostInput>) {
    if !pass.is_empty() {
        out.push(HostInput::Serial {
            port: 0,
            bytes: std::mem::take(pass),
        });
    }
}

/// Read stdin on a thread and send what is typed to the machine. The thread
/// ends at end of input or when the machine is gone.
pub fn spawn_reader(tx: Sender<HostInput>) {
    std::thread::Builder::new()
        .name("kagami-stdin".into())
        .spawn(move || {
            let mut esc = Escapes::default();
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut out = Vec::new();
                esc.feed(&buf[..n], &mut out);
                for i in out {
                    if tx.send(i).is_err() {
                        return;
                    }
                }
            }
        })
        .expect("spawn the stdin thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_a_x_quits_and_ctrl_a_ctrl_a_sends_one() {
        let mut e = Escapes::default();
        let mut out = Vec::new();
        e.feed(b"ls\r\x01\x01z\x01", &mut out);
        assert_eq!(
            out,
            [HostInput::Serial {
                port: 0,
                bytes: b"ls\r\x01z".to_vec()
            }]
        );
        out.clear();
        // The escape spans two reads.
        e.feed(b"xignored", &mut out);
        assert_eq!(out, [HostInput::Quit]);
    }
}
