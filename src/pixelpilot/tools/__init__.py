"""pixelpilot.tools"""
