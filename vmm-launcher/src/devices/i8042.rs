//! Just enough of the i8042 keyboard controller for the guest to reset or
//! power off the machine (command 0xfe on port 0x64).

/// Data port.
pub const DATA_PORT: u16 = 0x60;
/// Command/status port.
pub const COMMAND_PORT: u16 = 0x64;
const CMD_RESET_CPU: u8 = 0xfe;

/// What a write asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum I8042Action {
    None,
    Reset,
}

/// A keyboard controller with no keyboard.
#[derive(Default)]
pub struct I8042;

impl I8042 {
    /// Status and data reads: nothing pending, input buffer empty.
    pub fn read(&self, _port: u16) -> u8 {
        0
    }

    /// Handles a write; 0xfe on the command port resets the machine.
    pub fn write(&self, port: u16, value: u8) -> I8042Action {
        if port == COMMAND_PORT && value == CMD_RESET_CPU {
            I8042Action::Reset
        } else {
            I8042Action::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_0xfe_on_the_command_port_resets() {
        let k = I8042;
        assert_eq!(k.write(COMMAND_PORT, 0xfe), I8042Action::Reset);
        assert_eq!(k.write(DATA_PORT, 0xfe), I8042Action::None);
        assert_eq!(k.write(COMMAND_PORT, 0xd1), I8042Action::None);
        assert_eq!(k.read(COMMAND_PORT), 0);
    }
}
