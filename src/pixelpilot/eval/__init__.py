"""pixelpilot.eval"""
