import unittest
from unittest import mock

from harness import netns
from harness.ovn import count_up, installed
from harness.scenarios import BY_NAME, ovn_traffic
from harness.scenarios.ovn import lsp_args, vif_args


class OvnScenario(unittest.TestCase):
    def test_only_ports_reported_true_count_as_up(self):
        self.assertEqual(count_up("true\n\nfalse\n\ntrue\n\n\n"), 2)
        self.assertEqual(count_up(""), 0)

    def test_every_logical_port_gets_a_distinct_mac_and_address(self):
        args = lsp_args(300)
        addrs = [args[i + 2] for i, a in enumerate(args) if a == "lsp-set-addresses"]
        self.assertEqual(len(addrs), 300)
        self.assertEqual(len(set(addrs)), 300)
        self.assertIn("02:00:00:00:01:2c 10.20.1.44", addrs)

    def test_interfaces_are_bound_by_iface_id_to_the_logical_ports(self):
        args = vif_args("br", 2)
        self.assertEqual(args[0], "add-port")
        self.assertIn("external_ids:iface-id=lp2", args)
        self.assertFalse(any(len(a) > 15 for a in args if a.startswith("bn-lp")))


class OvnTrafficScenario(unittest.TestCase):
    def test_installed_is_read_from_the_interface_external_ids(self):
        self.assertTrue(installed('{iface-id=vm1, ovn-installed="true"}'))
        self.assertTrue(installed("{iface-id=vm1, ovn-installed=true}"))
        self.assertFalse(installed("{iface-id=vm1}"))
        self.assertFalse(installed('{iface-id=vm1, ovn-installed="false"}'))

    def test_one_transaction_creates_both_vm_ports_with_port_security_and_the_acls(self):
        args = ovn_traffic.nb_args()
        commands = [args[0]] + [args[i + 1] for i, a in enumerate(args) if a == "--"]
        self.assertEqual(commands.count("lsp-add"), 2)
        self.assertEqual(commands.count("lsp-set-port-security"), 2)
        for i, lp in enumerate(ovn_traffic.LSPS):
            self.assertIn(f"{netns.MACS[i]} {netns.ADDRS[i]}", args)
            self.assertIn(lp, args)
        acls = [args[i + 1 : i + 6] for i, a in enumerate(args) if a == "acl-add"]
        self.assertEqual([a[-1] for a in acls], ["drop", "allow-related", "allow-related"])
        self.assertEqual({a[1] for a in acls if a[-1] == "allow-related"},
                         {"to-lport", "from-lport"})  # fmt: skip

    def test_a_connection_between_the_vms_counts_as_tracked(self):
        dump = ("udp,orig=(src=10.77.0.1,dst=10.77.0.2,sport=41000,dport=5201),"
                "reply=(src=10.77.0.2,dst=10.77.0.1,sport=5201,dport=41000),zone=3\n")  # fmt: skip
        self.assertTrue(ovn_traffic.tracked(dump))
        self.assertFalse(ovn_traffic.tracked("tcp,orig=(src=10.9.0.1,dst=10.77.0.2,sport=1)\n"))
        self.assertFalse(ovn_traffic.tracked(""))

    def test_run_alternates_the_switches_over_the_tunnel_topology(self):
        ctx = mock.Mock(switch_names=["ferrovs", "ovs"])
        with mock.patch.object(ovn_traffic.ovn, "missing", return_value=None):
            ovn_traffic.run(ctx)
        ctx.alternate.assert_called_once()
        self.assertEqual(ctx.alternate.call_args.args[0], "ovn-traffic")
        self.assertIs(ctx.alternate.call_args.kwargs["start"], False)

    def test_the_scenario_is_registered_and_left_out_of_quick(self):
        self.assertIs(BY_NAME["ovn-traffic"], ovn_traffic)
        self.assertFalse(ovn_traffic.QUICK)


if __name__ == "__main__":
    unittest.main()
