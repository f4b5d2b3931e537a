"""textgym"""
