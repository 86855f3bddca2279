"""pixelpilot.envs"""
