"""Fitting: the trainer loop, its configs, the splat parameter set, schedules and checkpoints.

``recon.train.config`` imports without torch (the CLI parses it); everything else loads torch.
"""
