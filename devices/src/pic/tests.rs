use super::*;

/// The PC BIOS initialisation: master at 0x08, slave at 0x70, cascade on IR2.
fn pc_pic(icw4: u8) -> Pic8259 {
    let mut p = Pic8259::new();
    for (cmd, data, base, icw3) in [(MASTER_COMMAND, MASTER_DATA, 0x08, 0x04), (SLAVE_COMMAND, SLAVE_DATA, 0x70, 0x02)] {
        p.write(cmd, 1, 0x11);
        p.write(data, 1, base);
        p.write(data, 1, icw3);
        p.write(data, 1, icw4 as u32);
    }
    p
}

fn eoi(p: &mut Pic8259, chip_cmd: u16) {
    p.write(chip_cmd, 1, 0x20);
}

#[test]
fn init_sequence_and_basic_delivery() {
    let mut p = pc_pic(0x01);
    assert!(!p.pending());
    p.set_irq(0, true);
    assert!(p.pending());
    assert_eq!(p.acknowledge(), 0x08);
    assert_eq!(p.in_service(), 1);
    assert!(!p.pending(), "edge request consumed by INTA");
    // Still high: no new edge, so nothing after EOI either.
    eoi(&mut p, MASTER_COMMAND);
    assert_eq!(p.in_service(), 0);
    assert!(!p.pending());
    p.set_irq(0, false);
    p.set_irq(0, true);
    assert_eq!(p.acknowledge(), 0x08);
}

#[test]
fn fixed_priority_nests_only_higher_levels() {
    let mut p = pc_pic(0x01);
    p.set_irq(3, true);
    p.set_irq(1, true);
    assert_eq!(p.acknowledge(), 0x09);
    // IRQ3 is lower priority than the in-service IRQ1.
    assert!(!p.pending());
    p.set_irq(0, true);
    assert!(p.pending(), "IRQ0 outranks IRQ1 in service");
    assert_eq!(p.acknowledge(), 0x08);
    eoi(&mut p, MASTER_COMMAND); // clears IRQ0 (highest in service)
    assert_eq!(p.in_service(), 0b10);
    eoi(&mut p, MASTER_COMMAND);
    assert_eq!(p.acknowledge(), 0x0b);
}

#[test]
fn cascade_delivers_slave_vectors() {
    let mut p = pc_pic(0x01);
    p.set_irq(14, true);
    assert!(p.pending());
    assert_eq!(p.acknowledge(), 0x76);
    assert_eq!(p.in_service(), (1 << 14) | (1 << 2));
    eoi(&mut p, SLAVE_COMMAND);
    eoi(&mut p, MASTER_COMMAND);
    assert_eq!(p.in_service(), 0);
    // Masking on the slave hides the request from the master too.
    p.write(SLAVE_DATA, 1, 0x01);
    p.set_irq(8, true);
    assert!(!p.pending());
    p.write(SLAVE_DATA, 1, 0x00);
    assert!(p.pending());
    assert_eq!(p.acknowledge(), 0x70);
    // Masking the cascade input on the master hides all slave lines.
    eoi(&mut p, SLAVE_COMMAND);
    eoi(&mut p, MASTER_COMMAND);
    p.write(MASTER_DATA, 1, 0x04);
    p.set_irq(9, true);
    assert!(!p.pending());
}

#[test]
fn auto_eoi_leaves_isr_clear_and_can_rotate() {
    let mut p = pc_pic(0x03);
    p.set_irq(1, true);
    assert_eq!(p.acknowledge(), 0x09);
    assert_eq!(p.in_service(), 0);
    // Rotate in AEOI mode: the acknowledged line becomes lowest priority.
    p.write(MASTER_COMMAND, 1, 0x80);
    p.set_irq(1, false);
    p.set_irq(1, true);
    assert_eq!(p.acknowledge(), 0x09);
    p.set_irq(1, false);
    p.set_irq(4, true);
    p.set_irq(1, true);
    assert_eq!(p.acknowledge(), 0x0c, "after rotation IR2..IR7 outrank IR1");
    assert_eq!(p.acknowledge(), 0x09);
}

#[test]
fn rotate_on_nonspecific_eoi_and_set_priority() {
    let mut p = pc_pic(0x01);
    p.set_irq(0, true);
    assert_eq!(p.acknowledge(), 0x08);
    p.write(MASTER_COMMAND, 1, 0xa0); // rotate on non-specific EOI
    assert_eq!(p.in_service(), 0);
    p.set_irq(0, false);
    p.set_irq(0, true);
    p.set_irq(5, true);
    assert_eq!(p.acknowledge(), 0x0d, "IR0 is now the lowest priority");
    p.write(MASTER_COMMAND, 1, 0x65); // specific EOI for IR5
    assert_eq!(p.in_service(), 0);
    assert_eq!(p.acknowledge(), 0x08);
    p.write(MASTER_COMMAND, 1, 0x60);
    // Set priority: IR6 lowest, so IR7 highest.
    p.write(MASTER_COMMAND, 1, 0xc6);
    p.set_irq(6, true);
    p.set_irq(7, true);
    p.set_irq(3, false);
    p.set_irq(3, true);
    assert_eq!(p.acknowledge(), 0x0f);
    // Rotate on specific EOI for 7: IR0 highest again.
    p.write(MASTER_COMMAND, 1, 0xe7);
    assert_eq!(p.acknowledge(), 0x0b);
}

#[test]
fn spurious_interrupts_use_irq7_and_irq15() {
    let mut p = pc_pic(0x01);
    // Level-triggered IRQ 5 that drops before the INTA.
    p.write(ELCR_MASTER, 1, 0x20);
    p.set_irq(5, true);
    assert!(p.pending());
    p.set_irq(5, false);
    assert_eq!(p.acknowledge(), 0x0f);
    assert_eq!(p.in_service(), 0, "spurious IRQ7 sets no ISR bit");
    // Slave spurious: master IR2 goes in service, slave nothing.
    p.write(ELCR_SLAVE, 1, 0x08);
    p.set_irq(11, true);
    // The master latched IR2's edge; remove the slave's request.
    let before = p.chips[0].irr;
    p.set_irq(11, false);
    p.chips[0].irr = before; // model the INTA racing the line drop
    assert_eq!(p.acknowledge(), 0x77);
    assert_eq!(p.in_service(), 1 << 2);
}

#[test]
fn level_triggered_lines_reassert_after_eoi() {
    let mut p = pc_pic(0x01);
    p.write(ELCR_SLAVE, 1, 0x02); // IRQ 9 level
    p.set_irq(9, true);
    assert_eq!(p.acknowledge(), 0x71);
    eoi(&mut p, SLAVE_COMMAND);
    eoi(&mut p, MASTER_COMMAND);
    assert!(p.pending(), "line still high");
    assert_eq!(p.acknowledge(), 0x71);
    eoi(&mut p, SLAVE_COMMAND);
    eoi(&mut p, MASTER_COMMAND);
    p.set_irq(9, false);
    assert!(!p.pending());
}

#[test]
fn elcr_ignores_edge_only_lines() {
    let mut p = Pic8259::new();
    p.write(ELCR_MASTER, 2, 0xffff);
    assert_eq!(p.read(ELCR_MASTER, 2), 0xdef8);
    // ICW1.LTIM makes every line level-triggered.
    p.write(MASTER_COMMAND, 1, 0x19);
    p.write(MASTER_DATA, 1, 0x20);
    p.write(MASTER_DATA, 1, 0x04);
    p.write(MASTER_DATA, 1, 0x01);
    p.set_irq(0, true);
    p.set_irq(0, false);
    assert!(!p.pending());
}

#[test]
fn ocw3_selects_irr_or_isr_and_poll() {
    let mut p = pc_pic(0x01);
    p.write(MASTER_DATA, 1, 0xff);
    p.set_irq(4, true);
    assert_eq!(p.read(MASTER_COMMAND, 1), 0x10, "IRR by default");
    p.write(MASTER_DATA, 1, 0x00);
    assert_eq!(p.acknowledge(), 0x0c);
    p.write(MASTER_COMMAND, 1, 0x0b);
    assert_eq!(p.read(MASTER_COMMAND, 1), 0x10, "ISR");
    p.write(MASTER_COMMAND, 1, 0x0a);
    assert_eq!(p.read(MASTER_COMMAND, 1), 0x00, "IRR again");
    eoi(&mut p, MASTER_COMMAND);
    // Poll: acts as the INTA and returns 0x80 | level, once.
    p.set_irq(6, true);
    p.write(MASTER_COMMAND, 1, 0x0c);
    assert_eq!(p.read(MASTER_COMMAND, 1), 0x86);
    assert_eq!(p.in_service(), 0x40);
    p.write(MASTER_COMMAND, 1, 0x0c);
    assert_eq!(p.read(MASTER_COMMAND, 1), 0x00, "nothing else requested");
    assert_eq!(p.read(MASTER_DATA, 1), 0x00, "poll mode ended; IMR reads back");
}

#[test]
fn special_mask_mode_lets_lower_levels_through() {
    let mut p = pc_pic(0x01);
    p.set_irq(3, true);
    assert_eq!(p.acknowledge(), 0x0b);
    p.write(MASTER_DATA, 1, 0x08); // mask IR3 (in service)
    p.set_irq(5, true);
    assert!(!p.pending(), "fully nested: IR3 in service blocks IR5");
    p.write(MASTER_COMMAND, 1, 0x68); // set special mask
    assert!(p.pending());
    assert_eq!(p.acknowledge(), 0x0d);
    p.write(MASTER_COMMAND, 1, 0x48); // reset special mask
    p.write(MASTER_COMMAND, 1, 0x65);
    assert_eq!(p.in_service(), 0x08);
}

#[test]
fn special_fully_nested_lets_higher_slave_lines_nest() {
    let mut p = Pic8259::new();
    for (cmd, data, base, icw3, icw4) in [
        (MASTER_COMMAND, MASTER_DATA, 0x08, 0x04, 0x11),
        (SLAVE_COMMAND, SLAVE_DATA, 0x70, 0x02, 0x01),
    ] {
        p.write(cmd, 1, 0x11);
        p.write(data, 1, base);
        p.write(data, 1, icw3);
        p.write(data, 1, icw4);
    }
    p.set_irq(12, true);
    assert_eq!(p.acknowledge(), 0x74);
    p.set_irq(8, true);
    assert!(p.pending(), "SFNM: IR2 in service does not block a higher slave line");
    assert_eq!(p.acknowledge(), 0x70);
}

#[test]
fn icw1_resets_masks_and_edge_sense() {
    let mut p = pc_pic(0x01);
    p.write(MASTER_DATA, 1, 0xff);
    p.set_irq(1, true);
    assert_eq!(p.masks() & 0xff, 0xff);
    let p2 = pc_pic(0x01);
    p.write(MASTER_COMMAND, 1, 0x11);
    assert_eq!(p.read(MASTER_DATA, 1), 0);
    p.write(MASTER_DATA, 1, 0x08);
    p.write(MASTER_DATA, 1, 0x04);
    p.write(MASTER_DATA, 1, 0x01);
    assert!(!p.pending(), "ICW1 cleared the edge-triggered IRR");
    assert_eq!(p.save().master, p2.save().master, "same state as a fresh init, apart from levels");
}

#[test]
fn save_restore_round_trip_and_validation() {
    let mut p = pc_pic(0x01);
    p.write(ELCR_SLAVE, 1, 0x0a);
    p.set_irq(9, true);
    p.set_irq(1, true);
    assert_eq!(p.acknowledge(), 0x09);
    let s = p.save();
    let json = serde_json::to_string(&s).unwrap();
    let back: State = serde_json::from_str(&json).unwrap();
    let mut q = Pic8259::new();
    q.restore(&back).unwrap();
    assert_eq!(q.save(), s);
    assert_eq!(q.acknowledge(), p.acknowledge());

    for bad in [
        State {
            master: ChipState {
                vector_base: 0x0c,
                ..s.master.clone()
            },
            ..s.clone()
        },
        State {
            master: ChipState {
                init_step: 4,
                ..s.master.clone()
            },
            ..s.clone()
        },
        State {
            slave: ChipState {
                elcr: 0x01,
                ..s.slave.clone()
            },
            ..s.clone()
        },
        State {
            slave: ChipState {
                priority_base: 9,
                ..s.slave.clone()
            },
            ..s.clone()
        },
    ] {
        let before = q.save();
        assert!(q.restore(&bad).is_err());
        assert_eq!(q.save(), before, "failed restore leaves the device untouched");
    }
}

#[test]
fn reset_returns_to_uninitialised() {
    let mut p = pc_pic(0x01);
    p.write(ELCR_MASTER, 1, 0x20);
    p.set_irq(5, true);
    assert!(p.pending());
    p.reset();
    assert_eq!(p.save(), Pic8259::new().save());
    assert!(!p.pending());
}
